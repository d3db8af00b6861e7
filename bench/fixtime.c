/* Preloaded under callgrind by bench/run --profile: Lua 5.4 seeds its string hashes from
 * time(NULL), and the per-GET figure is the difference of two runs, so both runs of a pair
 * must hash alike. time() returns BENCH_SEED_TIME; each pair gets its own. */
#include <stdlib.h>
#include <time.h>

time_t time(time_t *t) {
  static time_t v = -1;
  if (v == -1) {
    const char *s = getenv("BENCH_SEED_TIME");
    v = s != NULL ? (time_t)atol(s) : 0;
  }
  if (t != NULL)
    *t = v;
  return v;
}
