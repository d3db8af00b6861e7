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

/* Empty arrays. lua-cjson 2.1.0 decodes [] and {} alike as an empty table. The text's empty
 * arrays outside strings are counted first (bodies without a ']' right after '[' and blanks
 * cost a memchr for each ']'; with one, a memchr for each '"' before it too). When the
 * decoded value has exactly that many empty tables, all of them are arrays and dr_strip
 * marks them as it goes. Else (empty objects too) the text is rewritten: each empty array
 * becomes a one-element array holding DR_MARK, which dr_strip takes out again. A body could
 * spell the marker itself: then dr_strip finds more marks than were put in, and the
 * original text is decoded again, its empty arrays left plain. */
#define DR_MARK_JSON "\"\\u0000deepresearch:[]\""
#define DR_MARK "\0deepresearch:[]"
#define DR_MARK_LEN (sizeof DR_MARK - 1)

typedef struct dr_marks {
  int mt;     /* stack index of the array metatable */
  int marked; /* the text holds DR_MARK arrays (else every empty table is marked) */
  int found;  /* tables dr_strip marked */
} dr_marks;

static int dr_blank(char c) {
  return c == ' ' || c == '\n' || c == '\r' || c == '\t';
}

/* The '[' of the empty array whose ']' is at p, or NULL. */
static const char *dr_empty_array_at(const char *s, const char *p) {
  while (p > s && dr_blank(p[-1]))
    p--;
  return p > s && p[-1] == '[' ? p - 1 : NULL;
}

/* Whether the '"' at p is escaped: an odd run of backslashes before it. */
static int dr_escaped(const char *s, const char *p) {
  const char *q = p;
  while (q > s && q[-1] == '\\')
    q--;
  return (p - q) % 2 == 1;
}

/* Counts the empty arrays outside strings, from the first ']' at p; with b, also adds the
 * text to b with each of them marked. The quotes before each one say whether it is inside
 * a string. */
static int dr_empty_arrays(const char *s, size_t len, const char *p, luaL_Buffer *b) {
  const char *end = s + len, *from = s, *q = s, *open;
  int n = 0, in_string = 0;
  for (; p != NULL; p = memchr(p + 1, ']', (size_t)(end - p - 1))) {
    if ((open = dr_empty_array_at(s, p)) == NULL)
      continue;
    while ((q = memchr(q, '"', (size_t)(open - q))) != NULL) {
      in_string ^= !dr_escaped(s, q);
      q++;
    }
    q = open;
    if (in_string)
      continue;
    if (b != NULL) {
      luaL_addlstring(b, from, (size_t)(open - from));
      luaL_addstring(b, "[" DR_MARK_JSON "]");
      from = p + 1;
    }
    n++;
  }
  if (b != NULL)
    luaL_addlstring(b, from, (size_t)(end - from));
  return n;
}

/* The first ']' that may close an empty array, or NULL. */
static const char *dr_first_candidate(const char *s, size_t len) {
  const char *p = s, *end = s + len;
  while ((p = memchr(p, ']', (size_t)(end - p))) != NULL && dr_empty_array_at(s, p) == NULL)
    p++;
  return p;
}

/* Marks the table at t (n: its length, 0 or 1) when it is what m looks for. */
static int dr_mark(lua_State *L, int t, lua_Integer n, dr_marks *m) {
  if (m->marked) { /* [DR_MARK] */
    size_t len = 0;
    const char *v;
    int is_mark;
    if (n != 1)
      return 0;
    lua_rawgeti(L, t, 1);
    v = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &len) : NULL;
    is_mark = v != NULL && len == DR_MARK_LEN && memcmp(v, DR_MARK, DR_MARK_LEN) == 0;
    lua_pop(L, 1);
    if (!is_mark)
      return 0;
    lua_pushnil(L);
    lua_rawseti(L, t, 1);
  } else { /* any empty table */
    if (n != 0)
      return 0;
    lua_pushnil(L);
    if (lua_next(L, t) != 0) {
      lua_pop(L, 2);
      return 0;
    }
  }
  lua_pushvalue(L, m->mt);
  lua_setmetatable(L, t);
  m->found++;
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
 * empty arrays marked as such (m: NULL when the text has none). The array part first by
 * index (cheap), then the rest with lua_next. */
static void dr_strip(lua_State *L, int t, int depth, dr_marks *m) {
  lua_Integer i, n, v;
  /* Each level holds a key and a value, and pushes two more at most: room for eight
   * levels is made at once. */
  if (depth > 1000 || (depth % 8 == 0 && !lua_checkstack(L, 8 * 2 + 4)))
    return;
  n = (lua_Integer)dr_rawlen(L, t);
  if (n <= 1 && m != NULL && dr_mark(L, t, n, m))
    return;
  for (i = 1; i <= n; i++) {
    int vt;
    lua_rawgeti(L, t, i);
    vt = lua_type(L, -1);
    if (vt == LUA_TTABLE) {
      dr_strip(L, lua_gettop(L), depth + 1, m);
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
      dr_strip(L, lua_gettop(L), depth + 1, m);
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

/* Decodes the text at top, its n empty arrays marked (see above) with the metatable at mt;
 * leaves what dr_json_decode does. */
static int dr_decode_marked(lua_State *L, int n, int mt) {
  int t = lua_gettop(L), r;
  dr_marks m;
  size_t len;
  const char *s = lua_tolstring(L, t, &len);
  luaL_Buffer b;
  m.mt = mt;
  m.marked = 0;
  m.found = 0;
  lua_pushvalue(L, t);
  r = dr_call_decoder(L);
  if (r == 1 && lua_istable(L, -1))
    dr_strip(L, lua_gettop(L), 0, &m);
  if (r != 1 || m.found == n) { /* every empty table was an array, or an error */
    lua_replace(L, t);
    return r;
  }
  lua_settop(L, t); /* empty objects too: decode the marked text */
  m.marked = 1;
  m.found = 0;
  luaL_buffinit(L, &b);
  dr_empty_arrays(s, len, dr_first_candidate(s, len), &b);
  luaL_pushresult(&b);
  r = dr_call_decoder(L);
  if (r == 1 && lua_istable(L, -1))
    dr_strip(L, lua_gettop(L), 0, &m);
  if (r == 1 && m.found != n) { /* the text spelled DR_MARK itself */
    lua_settop(L, t);
    r = dr_call_decoder(L);
    if (r == 1 && lua_istable(L, -1))
      dr_strip(L, lua_gettop(L), 0, NULL);
    return r;
  }
  lua_replace(L, t);
  return r;
}

int dr_json_decode(lua_State *L) {
  size_t len;
  const char *s = lua_tolstring(L, -1, &len), *p = dr_first_candidate(s, len);
  int r, n;
  if (p != NULL) {
    lua_pushlightuserdata(L, (void *)&dr_array_mt_key);
    lua_rawget(L, LUA_REGISTRYINDEX);
    n = lua_istable(L, -1) ? dr_empty_arrays(s, len, p, NULL) : 0;
    if (n > 0) {
      lua_insert(L, -2); /* the metatable below the text */
      r = dr_decode_marked(L, n, lua_gettop(L) - 1);
      lua_remove(L, -2);
      return r;
    }
    lua_pop(L, 1);
  }
  r = dr_call_decoder(L);
  if (r == 1 && lua_istable(L, -1))
    dr_strip(L, lua_gettop(L), 0, NULL);
  return r;
}
