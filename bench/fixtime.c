/* Preloaded under callgrind by bench/run --profile. The per-GET figure is the difference of
 * two runs, so both runs of a pair must hash strings alike: Lua 5.4 seeds its string hashes
 * from time(), LuaJIT 2.1 from the getrandom system call. Here time() returns
 * BENCH_SEED_TIME and getrandom, made through syscall(), bytes derived from it; each pair of
 * runs gets its own value. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>

static time_t seed_time(void) {
  static time_t v = -1;
  if (v == -1) {
    const char *s = getenv("BENCH_SEED_TIME");
    v = s != NULL ? (time_t)atol(s) : 0;
  }
  return v;
}

time_t time(time_t *t) {
  time_t v = seed_time();
  if (t != NULL)
    *t = v;
  return v;
}

/* splitmix64: the same bytes for the same seed, every call of the process alike. */
static void fill(unsigned char *p, size_t n) {
  uint64_t x = (uint64_t)seed_time();
  size_t i;
  for (i = 0; i < n; i++) {
    uint64_t z;
    if (i % 8 == 0)
      x += 0x9e3779b97f4a7c15ULL;
    z = x;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    p[i] = (unsigned char)((z ^ (z >> 31)) >> (8 * (i % 8)));
  }
}

/* x86-64 passes up to six register arguments: read six and pass them on, whatever the call. */
long syscall(long n, ...) {
  static long (*real)(long, ...);
  long a[6];
  int i;
  va_list ap;
  va_start(ap, n);
  for (i = 0; i < 6; i++)
    a[i] = va_arg(ap, long);
  va_end(ap);
  if (n == SYS_getrandom) {
    fill((unsigned char *)a[0], (size_t)a[1]);
    return a[1];
  }
  if (real == NULL)
    *(void **)&real = dlsym(RTLD_NEXT, "syscall");
  return real(n, a[0], a[1], a[2], a[3], a[4], a[5]);
}
