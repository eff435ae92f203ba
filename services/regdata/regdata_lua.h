/* regdata_lua: the Lua both binding scripts start with (REGDATA_LUA_LOOKUP and
 * REGDATA_LUA_REGISTER): reading an AOR's one hash, moving bindings stored in the
 * three-key layout of earlier versions into it, and purging expired bindings.
 * Private to the regdata library; regdata.h documents the layout. */
#ifndef SKEIN_REGDATA_LUA_H
#define SKEIN_REGDATA_LUA_H

#define REGDATA_STR_(x) #x
#define REGDATA_STR(x)	REGDATA_STR_(x)

/* Defines in the script:
 *   M             the meta fields' prefix, byte 1 (REGDATA_META_MARK)
 *   now           Redis TIME in unix ms
 *   each(cmd, key, list)  a command over a list of fields, in chunks (unpack() has
 *                 a stack limit)
 *   load(z)       z: the HGETALL of KEYS[1]. Returns order (the live binding keys,
 *                 in hash order), blob (key -> packed Binding), score (key -> expiry
 *                 ms), meta (key -> {cseq, registered_ms string, call-id}) and wrote
 *                 (true when it changed the hash). Bindings of the three-key layout
 *                 (a blob without its meta field: KEYS[2] the expiry ZSET, KEYS[3]
 *                 the "<cseq> <registered_ms> <call-id>" hash) get their meta field
 *                 and the two old keys are deleted; expired bindings, and a meta
 *                 field or an old binding without an expiry, are removed.
 * The caller sets the key's PEXPIRE when `wrote` (the migration leaves the TTL
 * the hash had, which was the old keys' too). */
#define REGDATA_LUA_LOAD                                                                  \
	"local M = '\\1'\n"                                                               \
	"local t = redis.call('TIME')\n"                                                  \
	"local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"        \
	"local function each(cmd, key, list)\n"                                           \
	"  for i = 1, #list, 1000 do\n"                                                   \
	"    redis.call(cmd, key, unpack(list, i, math.min(i + 999, #list)))\n"           \
	"  end\n"                                                                         \
	"end\n"                                                                           \
	"local function load(z)\n"                                                        \
	"  local blob, raw, keys, old, gone = {}, {}, {}, {}, {}\n"                       \
	"  for i = 1, #z, 2 do\n"                                                         \
	"    local f = z[i]\n"                                                            \
	"    if string.byte(f) == 1 then\n"                                              \
	"      raw[string.sub(f, 2)] = z[i + 1]\n"                                        \
	"    else\n"                                                                      \
	"      blob[f] = z[i + 1]\n"                                                      \
	"      keys[#keys + 1] = f\n"                                                     \
	"    end\n"                                                                       \
	"  end\n"                                                                         \
	"  for k in pairs(raw) do\n"                                                      \
	"    if not blob[k] then gone[#gone + 1] = M .. k end\n"                          \
	"  end\n"                                                                         \
	"  for _, k in ipairs(keys) do\n"                                                 \
	"    if not raw[k] then old[#old + 1] = k end\n"                                  \
	"  end\n"                                                                         \
	"  local wrote = false\n"                                                         \
	"  if #old > 0 then\n"                                                            \
	"    local sc, w = {}, {}\n"                                                      \
	"    local zs = redis.call('ZRANGE', KEYS[2], 0, -1, 'WITHSCORES')\n"             \
	"    for i = 1, #zs, 2 do sc[zs[i]] = zs[i + 1] end\n"                            \
	"    for _, k in ipairs(old) do\n"                                                \
	"      local s = sc[k] and tonumber(sc[k])\n"                                     \
	"      if s then\n"                                                               \
	"        local m = redis.call('HGET', KEYS[3], k) or '0 0 '\n"                    \
	"        raw[k] = string.format('%d', s) .. ' ' .. m\n"                           \
	"        w[#w + 1], w[#w + 2] = M .. k, raw[k]\n"                                 \
	"      else\n"                                                                    \
	"        gone[#gone + 1] = k\n"                                                   \
	"        blob[k] = nil\n"                                                         \
	"      end\n"                                                                     \
	"    end\n"                                                                       \
	"    each('HSET', KEYS[1], w)\n"                                                  \
	"    redis.call('DEL', KEYS[2], KEYS[3])\n"                                       \
	"    wrote = true\n"                                                              \
	"  end\n"                                                                         \
	"  local order, score, meta = {}, {}, {}\n"                                       \
	"  for _, k in ipairs(keys) do\n"                                                 \
	"    local m = blob[k] and raw[k]\n"                                              \
	"    local e, c, rs, id\n"                                                        \
	"    if m then e, c, rs, id = string.match(m, '^(%d+) (%d+) (%d+) (.*)$') end\n"  \
	"    e = e and tonumber(e)\n"                                                     \
	"    if e and e > now then\n"                                                     \
	"      order[#order + 1] = k\n"                                                   \
	"      score[k] = e\n"                                                            \
	"      meta[k] = {tonumber(c), rs, id}\n"                                         \
	"    elseif blob[k] then\n"                                                       \
	"      gone[#gone + 1], gone[#gone + 2] = k, M .. k\n"                            \
	"      blob[k] = nil\n"                                                           \
	"    end\n"                                                                       \
	"  end\n"                                                                         \
	"  if #gone > 0 then\n"                                                           \
	"    each('HDEL', KEYS[1], gone)\n"                                               \
	"    wrote = true\n"                                                              \
	"  end\n"                                                                         \
	"  return order, blob, score, meta, wrote\n"                                      \
	"end\n"

/* Sorts keys by expiry, then key: the order ZRANGE of the old expiry ZSET gave. */
#define REGDATA_LUA_BY_EXPIRY                                                             \
	"local function by_expiry(keys, score)\n"                                         \
	"  if #keys > 1 then\n"                                                           \
	"    table.sort(keys, function(a, b)\n"                                           \
	"      if score[a] ~= score[b] then return score[a] < score[b] end\n"             \
	"      return a < b\n"                                                            \
	"    end)\n"                                                                      \
	"  end\n"                                                                         \
	"  return keys\n"                                                                 \
	"end\n"

#endif
