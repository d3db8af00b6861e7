/* JSON text to Lua values, by calling through the Lua API the decoder the Lua front hands
 * over (core.set_decoder: a private lua-cjson instance, or an editor's own decoder). Linking
 * cjson's C code instead would clash with the copy an editor embedding Lua may export. */
#include "json.h"

#include <string.h>

static const char dr_decoder_key = 'j';
static const char dr_null_key = 'n';
static const char dr_array_mt_key = 'a';

/* core.set_decoder(decode, null): decode(text) returns the value or raises on bad JSON; null is
 * the value it gives JSON null (absent: it gives none). Returns the previous pair. */
int dr_json_set_decoder(lua_State *L) {
  if (!lua_isnoneornil(L, 1))
    luaL_checktype(L, 1, LUA_TFUNCTION);
  lua_settop(L, 2);
  lua_pushlightuserdata(L, (void *)&dr_decoder_key);
  lua_rawget(L, LUA_REGISTRYINDEX);
  lua_pushlightuserdata(L, (void *)&dr_null_key);
  lua_rawget(L, LUA_REGISTRYINDEX);
  lua_pushlightuserdata(L, (void *)&dr_decoder_key);
  lua_pushvalue(L, 1);
  lua_rawset(L, LUA_REGISTRYINDEX);
  lua_pushlightuserdata(L, (void *)&dr_null_key);
  lua_pushvalue(L, 2);
  lua_rawset(L, LUA_REGISTRYINDEX);
  return 2;
}

int dr_json_has_decoder(lua_State *L) {
  int has;
  lua_pushlightuserdata(L, (void *)&dr_decoder_key);
  lua_rawget(L, LUA_REGISTRYINDEX);
  has = lua_isfunction(L, -1);
  lua_pop(L, 1);
  return has;
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

/* What the walk needs: the decoder's null, and the empty-array marks (mt 0: none). */
typedef struct dr_walk {
  int null_type; /* lua_type of the decoder's null; LUA_TNONE when it has none */
  int null;      /* stack index of the decoder's null */
  int mt;        /* stack index of the array metatable, 0 when nothing is marked */
  int marked;    /* the text holds DR_MARK arrays (else every empty table is marked) */
  int found;     /* tables dr_strip marked */
} dr_walk;

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
static int dr_mark(lua_State *L, int t, lua_Integer n, dr_walk *m) {
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

/* Whether the value on top is the decoder's null. */
static int dr_is_null(lua_State *L, int vt, const dr_walk *w) {
  return vt == w->null_type && lua_rawequal(L, -1, w->null);
}

/* Nulls out of objects and integers into place, in the table at absolute index t, and
 * empty arrays marked as such (when w->mt is set). The array part first by index (cheap),
 * then the rest with lua_next. */
static void dr_strip(lua_State *L, int t, int depth, dr_walk *w) {
  lua_Integer i, n, v;
  /* Each level holds a key and a value, and pushes two more at most: room for eight
   * levels is made at once. */
  if (depth > 1000 || (depth % 8 == 0 && !lua_checkstack(L, 8 * 2 + 4)))
    return;
  n = (lua_Integer)dr_rawlen(L, t);
  if (n <= 1 && w->mt != 0 && dr_mark(L, t, n, w))
    return;
  for (i = 1; i <= n; i++) {
    int vt;
    lua_rawgeti(L, t, i);
    vt = lua_type(L, -1);
    if (vt == LUA_TTABLE && !dr_is_null(L, vt, w)) {
      dr_strip(L, lua_gettop(L), depth + 1, w);
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
    if (dr_is_null(L, vt, w)) {
      /* Assigning to an existing field during lua_next is allowed. */
      if (lua_type(L, -2) == LUA_TSTRING) {
        lua_pushvalue(L, -2);
        lua_pushnil(L);
        lua_rawset(L, t);
      }
    } else if (vt == LUA_TTABLE) {
      dr_strip(L, lua_gettop(L), depth + 1, w);
    } else if (vt == LUA_TNUMBER && dr_integral(L, &v)) {
      lua_pushvalue(L, -2);
      lua_pushinteger(L, v);
      lua_rawset(L, t);
    }
    lua_pop(L, 1);
  }
}

/* Replaces the text on top by what the decoder at index dec makes of it (see dr_json_decode). */
static int dr_call_decoder(lua_State *L, int dec) {
  int status;
  lua_pushvalue(L, dec);
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

/* Decodes the text on top with the decoder at dec and walks the value with w. */
static int dr_decode_walk(lua_State *L, int dec, dr_walk *w) {
  int r = dr_call_decoder(L, dec);
  if (r == 1 && lua_istable(L, -1))
    dr_strip(L, lua_gettop(L), 0, w);
  return r;
}

int dr_json_decode(lua_State *L) {
  int text = lua_gettop(L), dec = text + 1, r, n = 0;
  size_t len;
  const char *s = lua_tolstring(L, text, &len), *p;
  dr_walk w;
  lua_pushlightuserdata(L, (void *)&dr_decoder_key);
  lua_rawget(L, LUA_REGISTRYINDEX);
  if (!lua_isfunction(L, dec)) {
    lua_settop(L, text - 1);
    lua_pushliteral(L, "no JSON decoder (install lua-cjson)");
    return 0;
  }
  lua_pushlightuserdata(L, (void *)&dr_null_key);
  lua_rawget(L, LUA_REGISTRYINDEX);
  w.null_type = lua_isnil(L, -1) ? LUA_TNONE : lua_type(L, -1);
  w.null = text + 2;
  w.mt = 0;
  w.marked = 0;
  w.found = 0;
  p = dr_first_candidate(s, len);
  if (p != NULL) {
    lua_pushlightuserdata(L, (void *)&dr_array_mt_key);
    lua_rawget(L, LUA_REGISTRYINDEX);
    n = lua_istable(L, -1) ? dr_empty_arrays(s, len, p, NULL) : 0;
    w.mt = n > 0 ? lua_gettop(L) : 0;
  }
  lua_pushvalue(L, text);
  r = dr_decode_walk(L, dec, &w);
  if (r == 1 && w.found != n) { /* empty objects too: decode the marked text */
    luaL_Buffer b;
    lua_pop(L, 1);
    w.marked = 1;
    w.found = 0;
    luaL_buffinit(L, &b);
    dr_empty_arrays(s, len, p, &b);
    luaL_pushresult(&b);
    r = dr_decode_walk(L, dec, &w);
    if (r == 1 && w.found != n) { /* the text spelled DR_MARK itself: its arrays stay plain */
      lua_pop(L, 1);
      w.mt = 0;
      lua_pushvalue(L, text);
      r = dr_decode_walk(L, dec, &w);
    }
  }
  lua_replace(L, text);
  lua_settop(L, text);
  return r;
}
