-- SHA-256 and HMAC-SHA256 in plain Lua, for signing the simulated Valyu webhooks. The simulator
-- shares no code with the client it tests (the client signs nothing; it verifies with OpenSSL in
-- its C core), so a bug here cannot hide a bug there. The simulator runs on Lua 5.4, where the
-- native bit operators are used; the file still loads on 5.1/5.2/LuaJIT (specs require it there)
-- through bit32, LuaJIT's bit, or arithmetic.
local M = {}

local MOD = 4294967296

local function arith_ops()
  local function bitop(a, b, fn)
    local r, p = 0, 1
    a, b = a % MOD, b % MOD
    for _ = 1, 32 do
      local x, y = a % 2, b % 2
      if fn(x, y) then r = r + p end
      a, b, p = (a - x) / 2, (b - y) / 2, p * 2
    end
    return r
  end
  return {
    band = function(a, b) return bitop(a, b, function(x, y) return x == 1 and y == 1 end) end,
    bxor = function(a, b) return bitop(a, b, function(x, y) return x ~= y end) end,
    bnot = function(a) return MOD - 1 - a % MOD end,
    rshift = function(a, n) return math.floor((a % MOD) / 2 ^ n) end,
    lshift = function(a, n) return (a * 2 ^ n) % MOD end,
  }
end

local function pick_ops()
  if _VERSION ~= "Lua 5.1" and _VERSION ~= "Lua 5.2" then
    -- 5.3+: native operators, compiled from text so older parsers never see them
    local chunk = load([[return {
      band = function(a, b) return a & b end,
      bxor = function(a, b) return a ~ b end,
      bnot = function(a) return ~a & 0xffffffff end,
      rshift = function(a, n) return (a & 0xffffffff) >> n end,
      lshift = function(a, n) return (a << n) & 0xffffffff end,
    }]])
    return chunk()
  end
  local ok, lib = pcall(require, "bit32")
  if not ok then ok, lib = pcall(require, "bit") end
  if ok and lib then
    return {
      band = function(a, b) return lib.band(a, b) % MOD end,
      bxor = function(a, b) return lib.bxor(a, b) % MOD end,
      bnot = function(a) return lib.bnot(a) % MOD end,
      rshift = function(a, n) return lib.rshift(a, n) % MOD end,
      lshift = function(a, n) return lib.lshift(a, n) % MOD end,
    }
  end
  return arith_ops()
end

local ops = pick_ops()
local band, bxor, bnot, rshift, lshift = ops.band, ops.bxor, ops.bnot, ops.rshift, ops.lshift

local function rrot(x, n)
  return (rshift(x, n) + lshift(x, 32 - n)) % MOD
end

local K = {
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
}

local function block(H, s, i)
  local w = {}
  for j = 0, 15 do
    local a, b, c, d = s:byte(i + 4 * j, i + 4 * j + 3)
    w[j] = ((a * 256 + b) * 256 + c) * 256 + d
  end
  for j = 16, 63 do
    local x, y = w[j - 15], w[j - 2]
    local s0 = bxor(bxor(rrot(x, 7), rrot(x, 18)), rshift(x, 3))
    local s1 = bxor(bxor(rrot(y, 17), rrot(y, 19)), rshift(y, 10))
    w[j] = (w[j - 16] + s0 + w[j - 7] + s1) % MOD
  end
  local a, b, c, d, e, f, g, h = H[1], H[2], H[3], H[4], H[5], H[6], H[7], H[8]
  for j = 0, 63 do
    local S1 = bxor(bxor(rrot(e, 6), rrot(e, 11)), rrot(e, 25))
    local ch = bxor(band(e, f), band(bnot(e), g))
    local t1 = (h + S1 + ch + K[j + 1] + w[j]) % MOD
    local S0 = bxor(bxor(rrot(a, 2), rrot(a, 13)), rrot(a, 22))
    local maj = bxor(bxor(band(a, b), band(a, c)), band(b, c))
    local t2 = (S0 + maj) % MOD
    h, g, f, e, d, c, b, a = g, f, e, (d + t1) % MOD, c, b, a, (t1 + t2) % MOD
  end
  H[1], H[2], H[3], H[4] = (H[1] + a) % MOD, (H[2] + b) % MOD, (H[3] + c) % MOD, (H[4] + d) % MOD
  H[5], H[6], H[7], H[8] = (H[5] + e) % MOD, (H[6] + f) % MOD, (H[7] + g) % MOD, (H[8] + h) % MOD
end

local function be32(x)
  x = x % MOD
  return string.char(math.floor(x / 16777216) % 256, math.floor(x / 65536) % 256,
    math.floor(x / 256) % 256, x % 256)
end

--- The raw 32-byte SHA-256 digest of s.
function M.digest(s)
  local H = { 0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
    0x5be0cd19 }
  local bits = #s * 8
  local pad = s .. "\128" .. string.rep("\0", (55 - #s) % 64)
    .. be32(math.floor(bits / MOD)) .. be32(bits)
  for i = 1, #pad, 64 do block(H, pad, i) end
  local out = {}
  for i = 1, 8 do out[i] = be32(H[i]) end
  return table.concat(out)
end

function M.hex(raw)
  return (raw:gsub(".", function(c) return string.format("%02x", c:byte()) end))
end

local function xor_with(key, byte)
  return (key:gsub(".", function(c) return string.char(bxor(c:byte(), byte)) end))
end

--- The raw 32-byte HMAC-SHA256 of data under key (RFC 2104).
function M.hmac(key, data)
  if #key > 64 then key = M.digest(key) end
  key = key .. string.rep("\0", 64 - #key)
  return M.digest(xor_with(key, 0x5c) .. M.digest(xor_with(key, 0x36) .. data))
end

function M.hmac_hex(key, data)
  return M.hex(M.hmac(key, data))
end

return M
