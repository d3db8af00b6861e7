/* JSON text to Lua values, by calling lua-cjson through the Lua API. Linking
 * cjson's C code instead would clash with the copy Neovim exports. */
#include "json.h"

#include <string.h>

static const char dr_decoder_key = 'j';
static const char dr_array_mt_key = 'a';

/* NaN, Infinity and hex numbers are not JSON: a body holding them is refused. */
static int dr_load_cjson(lua_State *L) {
  lua_getglobal(L, "require");
  lua_pushliteral(L, "cjson");
  lua_call(L, 1, 1);
  lua_getfield(L, -1, "new");
  lua_call(L, 0, 1);
  lua_getfield(L, -1, "decode_invalid_numbers");
  lua_pushboolean(L, 0);
  lua_call(L, 1, 0);
  lua_getfield(L, -1, "decode");
  return 1;
}

static int dr_load_vim_json(lua_State *L) {
  lua_getglobal(L, "vim");
  if (!lua_istable(L, -1))
    return 0;
  lua_getfield(L, -1, "json");
  if (!lua_istable(L, -1))
    return 0;
  lua_getfield(L, -1, "decode");
  return lua_isfunction(L, -1);
}

int dr_json_init(lua_State *L) {
  int top = lua_gettop(L);
  lua_pushcfunction(L, dr_load_cjson);
  if (lua_pcall(L, 0, 1, 0) != 0 || !lua_isfunction(L, -1)) {
    lua_settop(L, top);
    if (!dr_load_vim_json(L)) {
      lua_settop(L, top);
      return 0;
    }
  }
  lua_pushlightuserdata(L, (void *)&dr_decoder_key);
  lua_pushvalue(L, -2);
  lua_rawset(L, LUA_REGISTRYINDEX);
  lua_settop(L, top);
  return 1;
}

int dr_json_set_array_metatable(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_pushlightuserdata(L, (void *)&dr_array_mt_key);
  lua_pushvalue(L, 1);
  lua_rawset(L, LUA_REGISTRYINDEX);
  return 0;
}

/* Empty arrays. lua-cjson 2.1.0 decodes [] and {} alike as an empty table, so the text is
 * rewritten before decoding: each empty array outside strings becomes a one-element array
 * holding DR_MARK, which dr_strip takes out again, giving the table the array metatable.
 * Bodies without one cost a memchr for ']'. */
#define DR_MARK_JSON "\"\\u0000deepresearch:[]\""
#define DR_MARK "\0deepresearch:[]"
#define DR_MARK_LEN (sizeof DR_MARK - 1)

static int dr_blank(char c) {
  return c == ' ' || c == '\n' || c == '\r' || c == '\t';
}

/* Whether some ']' follows a '[' and blanks only: maybe an empty array (or a string). */
static int dr_maybe_empty_array(const char *s, size_t len) {
  const char *p = s, *end = s + len;
  while ((p = memchr(p, ']', (size_t)(end - p))) != NULL) {
    const char *q = p;
    while (q > s && dr_blank(q[-1]))
      q--;
    if (q > s && q[-1] == '[')
      return 1;
    p++;
  }
  return 0;
}

/* Walks the text, strings skipped; adds it to b with the empty arrays marked, or, with
 * b NULL, only counts them. -1 when the text holds a NUL, raw or as \u0000: only then could
 * it spell the marker itself, and its empty arrays are left unmarked. */
static int dr_mark_empty_arrays(const char *s, size_t len, luaL_Buffer *b) {
  size_t i, from = 0;
  int n = 0;
  for (i = 0; i < len; i++) {
    char c = s[i];
    if (c == '\0')
      return -1;
    if (c == '"') {
      for (i++; i < len && s[i] != '"'; i++) {
        if (s[i] == '\0' || (s[i] == '\\' && i + 5 < len && memcmp(s + i + 1, "u0000", 5) == 0))
          return -1;
        if (s[i] == '\\')
          i++;
      }
    } else if (c == '[') {
      size_t j = i + 1;
      while (j < len && dr_blank(s[j]))
        j++;
      if (j < len && s[j] == ']') {
        if (b != NULL) {
          luaL_addlstring(b, s + from, i - from);
          luaL_addstring(b, "[" DR_MARK_JSON "]");
        }
        from = j + 1;
        i = j;
        n++;
      }
    }
  }
  if (b != NULL)
    luaL_addlstring(b, s + from, len - from);
  return n;
}

/* When the text at t has an empty array and an array metatable was given, pushes that
 * metatable and the marked copy of the text and returns the metatable's index; else 0,
 * nothing pushed. */
static int dr_prepare_marks(lua_State *L, int t) {
  size_t len;
  const char *s = lua_tolstring(L, t, &len);
  luaL_Buffer b;
  if (!dr_maybe_empty_array(s, len))
    return 0;
  lua_pushlightuserdata(L, (void *)&dr_array_mt_key);
  lua_rawget(L, LUA_REGISTRYINDEX);
  if (!lua_istable(L, -1) || dr_mark_empty_arrays(s, len, NULL) <= 0) {
    lua_pop(L, 1);
    return 0;
  }
  luaL_buffinit(L, &b);
  dr_mark_empty_arrays(s, len, &b);
  luaL_pushresult(&b);
  return lua_gettop(L) - 1;
}

/* Whether the table at t is [DR_MARK]: then it is emptied and marked as an array. */
static int dr_unmark(lua_State *L, int t, int mark) {
  size_t len = 0;
  const char *v;
  int is_mark;
  if (dr_rawlen(L, t) != 1)
    return 0;
  lua_rawgeti(L, t, 1);
  v = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &len) : NULL;
  is_mark = v != NULL && len == DR_MARK_LEN && memcmp(v, DR_MARK, DR_MARK_LEN) == 0;
  lua_pop(L, 1);
  if (!is_mark)
    return 0;
  lua_pushnil(L);
  lua_rawseti(L, t, 1);
  lua_pushvalue(L, mark);
  lua_setmetatable(L, t);
  return 1;
}

/* Only integers a double holds exactly: past 2^53 the text's digits are already lost. */
#define DR_EXACT 9007199254740992LL

/* The integer a decoded number should be, if any: cjson 2.1.0 decodes 25 as 25.0, and
 * tasks count agents. Plain C arithmetic: the API's lua_tointegerx costs twice as much,
 * and the walk calls this for every number. An integer decoder's own integers compare
 * equal and are rewritten unchanged. Returns 0 for non-integral numbers and on 5.1/5.2. */
static int dr_integral(lua_State *L, lua_Integer *out) {
#if LUA_VERSION_NUM >= 503
  lua_Number d = lua_tonumberx(L, -1, NULL);
  if (!(d > -DR_EXACT && d < DR_EXACT) || d != (lua_Number)(lua_Integer)d)
    return 0;
  *out = (lua_Integer)d;
  return 1;
#else
  (void)L;
  (void)out;
  return 0;
#endif
}

/* Nulls out of objects and integers into place, in the table at absolute index t, and
 * marked empty arrays back to empty (mark: the array metatable's index, or 0). The array
 * part first by index (cheap), then the rest with lua_next. */
static void dr_strip(lua_State *L, int t, int depth, int mark) {
  lua_Integer i, n, v;
  /* Each level holds a key and a value, and pushes two more at most: room for eight
   * levels is made at once. */
  if (depth > 1000 || (depth % 8 == 0 && !lua_checkstack(L, 8 * 2 + 4)))
    return;
  if (mark != 0 && dr_unmark(L, t, mark))
    return;
  n = (lua_Integer)dr_rawlen(L, t);
  for (i = 1; i <= n; i++) {
    int vt;
    lua_rawgeti(L, t, i);
    vt = lua_type(L, -1);
    if (vt == LUA_TTABLE) {
      dr_strip(L, lua_gettop(L), depth + 1, mark);
    } else if (vt == LUA_TNUMBER && dr_integral(L, &v)) {
      lua_pushinteger(L, v);
      lua_rawseti(L, t, i);
    }
    lua_pop(L, 1);
  }
  if (n > 0)
    lua_pushinteger(L, n);
  else
    lua_pushnil(L);
  while (lua_next(L, t) != 0) {
    int vt = lua_type(L, -1);
    if (vt == LUA_TTABLE) {
      dr_strip(L, lua_gettop(L), depth + 1, mark);
    } else if (vt == LUA_TLIGHTUSERDATA) {
      /* Assigning to an existing field during lua_next is allowed. */
      if (lua_touserdata(L, -1) == NULL && lua_type(L, -2) == LUA_TSTRING) {
        lua_pushvalue(L, -2);
        lua_pushnil(L);
        lua_rawset(L, t);
      }
    } else if (vt == LUA_TNUMBER && dr_integral(L, &v)) {
      lua_pushvalue(L, -2);
      lua_pushinteger(L, v);
      lua_rawset(L, t);
    }
    lua_pop(L, 1);
  }
}

/* dr_json_decode without the walk. */
static int dr_call_decoder(lua_State *L) {
  int status;
  lua_pushlightuserdata(L, (void *)&dr_decoder_key);
  lua_rawget(L, LUA_REGISTRYINDEX);
  if (!lua_isfunction(L, -1)) {
    lua_pop(L, 2);
    lua_pushliteral(L, "no JSON decoder (install lua-cjson)");
    return 0;
  }
  lua_insert(L, -2);
  status = lua_pcall(L, 1, 1, 0);
  if (status != 0) {
    /* Only the decoder's verdict on the text is ours to report. Anything else raised in
     * there, such as lua.c's "interrupted!" from a Ctrl-C hook that fired on the call,
     * or running out of memory, belongs to the caller: -1 says re-raise it. */
    size_t len = 0;
    const char *msg = lua_tolstring(L, -1, &len);
    if (status != LUA_ERRRUN ||
        (msg != NULL && len >= 12 && strcmp(msg + len - 12, "interrupted!") == 0))
      return -1;
    if (msg == NULL) {
      lua_pop(L, 1);
      lua_pushliteral(L, "invalid JSON");
    }
    return 0;
  }
  return 1;
}

int dr_json_decode(lua_State *L) {
  int t = lua_gettop(L), mark = dr_prepare_marks(L, t), r = dr_call_decoder(L);
  if (r == 1 && lua_istable(L, -1))
    dr_strip(L, lua_gettop(L), 0, mark);
  if (mark == 0)
    return r;
  if (r == 0) { /* the message's positions are the marked text's: ask about the original */
    lua_settop(L, t);
    return dr_call_decoder(L);
  }
  lua_replace(L, t); /* the value, or the error to re-raise */
  lua_settop(L, t);
  return r;
}
