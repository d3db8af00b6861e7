/* Message authentication for webhooks: HMAC-SHA256 and a constant-time comparison, both from
 * OpenSSL's libcrypto (libcurl's own TLS library here), so that no hash of our own is written. */
#include "hmac.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

/* core.hmac_sha256(key, data): the 32 raw bytes of HMAC-SHA256(key, data). */
static int dr_hmac_sha256(lua_State *L) {
  size_t klen, dlen;
  const char *key = luaL_checklstring(L, 1, &klen);
  const char *data = luaL_checklstring(L, 2, &dlen);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int mdlen = 0;
  /* HMAC() with a NULL key fails for a zero length: an empty key is a valid HMAC key. */
  static const unsigned char none = 0;
  if (HMAC(EVP_sha256(), klen > 0 ? (const void *)key : (const void *)&none, (int)klen,
           (const unsigned char *)data, dlen, md, &mdlen) == NULL)
    return luaL_error(L, "hmac_sha256: libcrypto failed");
  lua_pushlstring(L, (const char *)md, mdlen);
  return 1;
}

/* core.equal_constant_time(a, b): whether two strings are equal, in a time that depends on
 * their lengths only (a signature check must not tell how many leading bytes matched). */
static int dr_equal_constant_time(lua_State *L) {
  size_t alen, blen;
  const char *a = luaL_checklstring(L, 1, &alen);
  const char *b = luaL_checklstring(L, 2, &blen);
  lua_pushboolean(L, alen == blen && CRYPTO_memcmp(a, b, alen) == 0);
  return 1;
}

static const luaL_Reg dr_hmac_functions[] = {
    {"hmac_sha256", dr_hmac_sha256}, {"equal_constant_time", dr_equal_constant_time}, {NULL, NULL}};

void dr_hmac_open(lua_State *L) {
  dr_setfuncs(L, dr_hmac_functions, 0);
}
