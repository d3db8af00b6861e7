/* The client: one engine whose transfers run one at a time. The blocking transport waits
 * for a transfer in slices of at most a given time and returns to Lua between them, so that
 * lua.c's interrupt hook (Ctrl-C), which fires only when Lua runs, can end the request. */
#include "client.h"

#include <limits.h>
#include <signal.h>
#include <string.h>
#include <time.h>

#include "handle.h"

static volatile sig_atomic_t dr_sigint_seen; /* signals trapped since the trap went on */
static volatile sig_atomic_t dr_signal_last;
static struct sigaction dr_sigint_prev, dr_sigterm_prev;
static int dr_sigint_trapped, dr_sigterm_trapped;

static double dr_clock_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

/* Transfers an interrupted request left behind: a client runs one request at a time, so any
 * transfer still owned when a new one starts is such a leftover. Cancelling closes its
 * connection (a half-read answer cannot be reused). */
static void dr_client_drop_leftovers(dr_engine *e) {
  while (e->xfers != NULL)
    dr_engine_cancel(e, e->xfers->id);
}

/* Waits up to ms for transfer id. 1: done, its result pushed (and stored as rec.result when
 * rec is a stack index); 0: still running; -1: no such transfer (cancelled, or never made).
 * Returns early when a hook is set (lua.c sets one on Ctrl-C) or a trapped SIGINT came. */
static int dr_client_wait(lua_State *L, dr_engine *e, lua_Integer id, lua_Integer ms, int rec) {
  dr_xfer *x = dr_engine_find(e, id);
  if (x == NULL)
    return -1;
  if (x->state != DR_DONE) {
    double start = dr_clock_ms(), left = (double)ms;
    for (;;) {
      dr_engine_step(e, left >= INT_MAX ? INT_MAX : (int)left + (left > 0));
      x = dr_engine_find(e, id);
      if (x == NULL)
        return -1;
      if (x->state == DR_DONE)
        break;
      if (lua_gethook(L) != NULL || dr_sigint_seen)
        return 0;
      left = (double)ms - (dr_clock_ms() - start);
      if (left <= 0)
        return 0;
    }
  }
  dr_engine_push_result(L, e, x);
  if (rec != 0) {
    lua_pushvalue(L, -1);
    lua_setfield(L, rec, "result");
  }
  return 1;
}

/* The rec argument at idx: a table, or 0 when absent. */
static int dr_rec_arg(lua_State *L, int idx) {
  if (lua_isnoneornil(L, idx))
    return 0;
  luaL_checktype(L, idx, LUA_TTABLE);
  return idx;
}

/* client:request(spec [, ms [, rec]]): starts the request. Without ms, waits until it is done
 * and returns its result table. With ms, waits at most ms: the result, or nil and the
 * transfer's id (wait on with finish). rec (a table) gets rec.id at once and rec.result when
 * the result comes, so the answer survives an error that unwinds past the return. */
static int dr_client_request(lua_State *L) {
  dr_engine *e = dr_handle_check(L, 1, DR_CLIENT);
  lua_Integer id, ms = luaL_optinteger(L, 3, -1);
  int rec = dr_rec_arg(L, 4), done;
  dr_client_drop_leftovers(e);
  id = dr_engine_add(L, e, 2);
  if (rec != 0) {
    lua_pushinteger(L, id);
    lua_setfield(L, rec, "id");
  }
  if (ms < 0) {
    dr_xfer *x;
    while ((x = dr_engine_find(e, id)) != NULL && x->state != DR_DONE)
      dr_engine_step(e, 1000);
    ms = 0;
  }
  done = dr_client_wait(L, e, id, ms, rec);
  if (done == 1)
    return 1;
  if (done < 0)
    return luaL_error(L, "request vanished (client closed during the call?)");
  lua_pushnil(L);
  lua_pushinteger(L, id);
  return 2;
}

/* client:finish(id, ms [, rec]): waits at most ms more for a transfer request started; its
 * result table, nil while it runs, false when there is no such transfer. */
static int dr_client_finish(lua_State *L) {
  dr_engine *e = dr_handle_check(L, 1, DR_CLIENT);
  lua_Integer id = luaL_checkinteger(L, 2), ms = luaL_checkinteger(L, 3);
  int done;
  luaL_argcheck(L, ms >= 0, 3, "must not be negative");
  done = dr_client_wait(L, e, id, ms, dr_rec_arg(L, 4));
  if (done == 1)
    return 1;
  if (done < 0)
    lua_pushboolean(L, 0);
  else
    lua_pushnil(L);
  return 1;
}

/* client:abandon(id): cancels a transfer (closing its connection); whether there was one. */
static int dr_client_abandon(lua_State *L) {
  dr_engine *e = dr_handle_check(L, 1, DR_CLIENT);
  lua_pushboolean(L, dr_engine_cancel(e, luaL_checkinteger(L, 2)));
  return 1;
}

static void dr_on_sigint(int sig) {
  dr_signal_last = sig;
  if (dr_sigint_seen < 1000)
    dr_sigint_seen++;
}

/* core.trap_interrupt(on [, term]): for a command that, after a first Ctrl-C, needs a few
 * seconds more (lua.c has restored the default action by then, under which a second Ctrl-C
 * kills the process before it can say anything). While on, SIGINT (and SIGTERM when term is
 * true: a service manager's stop, for a long-running process such as the worker) only counts
 * in a flag that core.interrupted() reads, and ends a wait slice early. Returns whether the
 * trap is on. */
static int dr_trap_interrupt(lua_State *L) {
  int on = lua_toboolean(L, 1), term = lua_toboolean(L, 2);
  if (on) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = dr_on_sigint;
    sigemptyset(&sa.sa_mask);
    if (!dr_sigint_trapped) {
      dr_sigint_seen = 0;
      if (sigaction(SIGINT, &sa, &dr_sigint_prev) == 0)
        dr_sigint_trapped = 1;
    }
    if (term && !dr_sigterm_trapped && sigaction(SIGTERM, &sa, &dr_sigterm_prev) == 0)
      dr_sigterm_trapped = 1;
  } else {
    if (dr_sigint_trapped)
      sigaction(SIGINT, &dr_sigint_prev, NULL);
    if (dr_sigterm_trapped)
      sigaction(SIGTERM, &dr_sigterm_prev, NULL);
    dr_sigint_trapped = dr_sigterm_trapped = 0;
    dr_sigint_seen = 0;
  }
  lua_pushboolean(L, dr_sigint_trapped);
  return 1;
}

/* The trap's handler lives in this module: when the Lua state closes it unloads the module
 * (dlclose), and a signal after that jumped to unmapped memory (a worker's second Ctrl-C while
 * it exited: SIGSEGV). This finalizer, of an object made after package's CLIBS table (whose
 * finalizer unloads C modules, and finalizers run in reverse order of creation), puts the
 * previous handlers back first. */
static int dr_trap_release(lua_State *L) {
  (void)L;
  if (dr_sigint_trapped)
    sigaction(SIGINT, &dr_sigint_prev, NULL);
  if (dr_sigterm_trapped)
    sigaction(SIGTERM, &dr_sigterm_prev, NULL);
  dr_sigint_trapped = dr_sigterm_trapped = 0;
  return 0;
}

/* core.interrupted(): whether a trapped signal came; then its name ("INT" or "TERM", the
 * last one) and how many came since the trap went on. */
static int dr_interrupted(lua_State *L) {
  int n = (int)dr_sigint_seen;
  lua_pushboolean(L, n != 0);
  if (n == 0)
    return 1;
  lua_pushstring(L, dr_signal_last == SIGTERM ? "TERM" : "INT");
  lua_pushinteger(L, n);
  return 3;
}

static const luaL_Reg dr_client_methods[] = {{"request", dr_client_request},
                                             {"finish", dr_client_finish},
                                             {"abandon", dr_client_abandon},
                                             {NULL, NULL}};

static int dr_client_new(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  dr_handle_new(L, DR_CLIENT, 1, NULL);
  return 1;
}

void dr_client_open(lua_State *L) {
  dr_handle_register(L, DR_CLIENT, dr_client_methods);
  lua_getfield(L, -1, "__index");
  lua_setfield(L, -3, "client_methods");
  lua_setfield(L, -2, "client_metatable");
  lua_pushcfunction(L, dr_client_new);
  lua_setfield(L, -2, "new_client");
  lua_pushcfunction(L, dr_trap_interrupt);
  lua_setfield(L, -2, "trap_interrupt");
  lua_pushcfunction(L, dr_interrupted);
  lua_setfield(L, -2, "interrupted");
  lua_newuserdata(L, 1); /* the trap's release at state close (dr_trap_release) */
  lua_newtable(L);
  lua_pushcfunction(L, dr_trap_release);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);
  lua_setfield(L, LUA_REGISTRYINDEX, "deepresearch.core.trap_release");
}
