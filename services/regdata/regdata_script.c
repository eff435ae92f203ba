/* regdata_script: the two registration scripts. REGDATA_LUA_REGISTER is the
 * registrar's, every kind of REGISTER; REGDATA_LUA_REFRESH the edge's, one kind only
 * (a refresh of one live binding), in as few instructions as Redis allows. regdata.h
 * says what each does, regdata_store.c builds their arguments and reads their answer. */
#include "regdata.h"
#include "regdata_lua.h"

/* KEYS: reg, exp, meta [, cred, nonce-count] (the last two with RegisterRequest.auth;
 * exp and meta are the three-key layout's, read only to move its bindings into reg,
 * regdata_lua.h).
 * ARGV: call-id, cseq, mode ('q' query, 's' Contact: *, 'u' update, 'r' update only
 *       when it is a pure refresh, else {0, 'defer', 0, 0, 0}), max_contacts,
 *       n, [HA1 field, HA1, nc, nc ttl s,] then n x (binding key, expires in s (0
 *       removes), packed Binding).
 * Returns {code, tag, added, refreshed, removed, blob, seconds left, ...}; the tag is
 * 'ok', 'query', 'replay', 'cseq' (500) or 'max' (403); or {401, 'stale', 0, 0, 0,
 * current HA1 or ""} / {401, 'nc', 0, 0, 0} when the digest's Redis half fails.
 * regdata.h says what it does.
 * Byte 16 ('\16') is the protobuf tag of field 2 (expires_at_ms, varint), 112 ('\112')
 * that of field 14 (registered_ms); Lua numbers are exact up to 2^53 ms.
 *
 * Cost (issue 6): one hash per AOR holds each binding and, beside it, what the script
 * compares ("\1<key>": expiry, CSeq, registered_ms, Call-ID), so one HGETALL reads
 * everything, one HSET writes a binding and one PEXPIRE keeps the key (it was 9 calls
 * and 11 with the digest check with the three keys). The commonest REGISTER of all,
 * the edge's refresh of one binding, takes REGDATA_LUA_REFRESH below; 'r' here serves
 * the edge's refreshes of several contacts in one request. */
const char REGDATA_LUA_REGISTER[] =
	"local reg = KEYS[1]\n"
	"local callid, cseq, mode = ARGV[1], tonumber(ARGV[2]), ARGV[3]\n"
	"local base = 6\n"
	/* 'r': the edge writes a pure refresh itself (docs/edge.md). Anything else —
	 * a binding added or removed, a CSeq or replay question, the 403 — is 'defer':
	 * nothing written (the nonce-count included), the registrar gets the request. */
	"local direct = mode == 'r'\n"
	"local function nc_check()\n"
	/* nc 1 (a fresh nonce): any count recorded before is >= 1, one SET NX says it.
	 * The edge writes counts in canonical decimal: '1' is 1, with no strtod. */
	"  if ARGV[8] == '1' then\n"
	"    if not redis.call('SET', KEYS[5], '1', 'NX', 'EX', ARGV[9]) then\n"
	"      return {401, 'nc', 0, 0, 0}\n"
	"    end\n"
	"    return\n"
	"  end\n"
	"  local nc = tonumber(ARGV[8])\n"
	"  if nc > 1 then\n"
	"    if nc <= tonumber(redis.call('GET', KEYS[5]) or '0') then\n"
	"      return {401, 'nc', 0, 0, 0}\n"
	"    end\n"
	"    redis.call('SET', KEYS[5], ARGV[8], 'EX', ARGV[9])\n"
	"  end\n"
	"end\n"
	/* The digest's Redis half first (RFC 7616 §3.4.5): the HA1 the edge verified
	 * with is still the stored one, and the nonce-count is fresh; else nothing is
	 * written. The nc is recorded even when the registration then fails: the
	 * Authorization was used. */
	"if KEYS[5] then\n"
	"  local cur = redis.call('HGET', KEYS[4], ARGV[6])\n"
	"  if cur ~= ARGV[7] then return {401, 'stale', 0, 0, 0, cur or ''} end\n"
	"  if not direct then\n"
	"    local no = nc_check()\n"
	"    if no then return no end\n"
	"  end\n"
	"  base = 10\n"
	"end\n"
	REGDATA_LUA_LOAD REGDATA_LUA_BY_EXPIRY
	/* One string.char: Lua interns every string it makes. */
	"local function varint(x)\n"
	/* Unix ms from 1971 to 2109 take 6 bytes: one string.char, no table (Lua
	 * allocations are a tenth of Redis' instructions per REGISTER). */
	"  if x >= 34359738368 and x < 4398046511104 then\n"
	/* exact: integers below 2^53; arithmetic, no math.floor call (~3 k instructions
	 * per REGISTER less, pipelined under callgrind) */
	"    local a = x % 128; x = (x - a) / 128\n"
	"    local b = x % 128; x = (x - b) / 128\n"
	"    local c = x % 128; x = (x - c) / 128\n"
	"    local d = x % 128; x = (x - d) / 128\n"
	"    local e = x % 128; x = (x - e) / 128\n"
	"    return string.char(a + 128, b + 128, c + 128, d + 128, e + 128, x)\n"
	"  end\n"
	"  local b, i = {}, 1\n"
	"  while x >= 128 do\n"
	"    b[i] = x % 128 + 128\n"
	"    x = math.floor(x / 128)\n"
	"    i = i + 1\n"
	"  end\n"
	"  b[i] = x\n"
	"  return string.char(unpack(b))\n"
	"end\n"
	/* Numbers go to Redis as strings made once, with the integer format: Lua's own
	 * conversion is a %.14g printf per use. */
	"local function metaval(e, fs)\n"
	"  return string.format('%d', e) .. ' ' .. ARGV[2] .. ' ' .. fs .. ' ' .. callid\n"
	"end\n"
	"local z = redis.call('HGETALL', reg)\n"
	"local maxc, n = tonumber(ARGV[4]), tonumber(ARGV[5])\n"
	/* order: the live binding keys; score: key -> expiry (ms), nil when not live. */
	"local order, blob, score, meta = load(z)\n"
	/* The reply lists every live binding, by expiry as ZRANGE of the old ZSET did. */
	"local function answer(code, tag, a, r, d)\n"
	"  local out = {code, tag, a, r, d}\n"
	"  for _, k in ipairs(by_expiry(order, score)) do\n"
	"    out[#out + 1] = blob[k]\n"
	"    out[#out + 1] = math.ceil((score[k] - now) / 1000)\n"
	"  end\n"
	"  return out\n"
	"end\n"
	"if mode == 'q' then return answer(200, 'query', 0, 0, 0) end\n"
	"local keys, ops = {}, {}\n"
	"if mode == 's' then\n"
	"  for _, k in ipairs(order) do\n"
	"    keys[#keys + 1] = k\n"
	"    ops[k] = {0, ''}\n"
	"  end\n"
	"else\n"
	"  for i = 0, n - 1 do\n"
	"    local k = ARGV[base + 3 * i]\n"
	"    if not ops[k] then keys[#keys + 1] = k end\n"
	/* sized for the three fields the plan adds (no rehash) */
	"    ops[k] = {tonumber(ARGV[base + 1 + 3 * i]), ARGV[base + 2 + 3 * i], false, false, false}\n"
	"  end\n"
	"end\n"
	/* Plan first: a request that fails writes nothing. What the plan reads of each
	 * binding (live?, first registration, Call-ID) serves the writes too. */
	"local before = #order\n"
	"local after, same, changes = before, 0, 0\n"
	"for _, k in ipairs(keys) do\n"
	"  local op = ops[k]\n"
	"  local live = score[k] ~= nil\n"
	"  local c, rs, id\n"
	"  if live then c, rs, id = meta[k][1], meta[k][2], meta[k][3] end\n"
	"  op[3], op[4], op[5] = live, rs, id\n"
	"  if direct and (not live or op[1] == 0 or id == callid and c >= cseq) then\n"
	"    return {0, 'defer', 0, 0, 0}\n"
	"  end\n"
	"  if live and id == callid and c > cseq then return answer(500, 'cseq', 0, 0, 0) end\n"
	"  if live and id == callid and c == cseq then\n"
	"    if op[1] == 0 or string.sub(blob[k], 1, #op[2] + 1) ~= op[2] .. '\\16' then\n"
	"      return answer(500, 'cseq', 0, 0, 0)\n"
	"    end\n"
	"    same = same + 1\n"
	"  elseif op[1] > 0 or live then\n"
	"    changes = changes + 1\n"
	"  end\n"
	"  if live and op[1] == 0 then after = after - 1\n"
	"  elseif not live and op[1] > 0 then after = after + 1 end\n"
	"end\n"
	"if same > 0 then\n"
	"  if changes > 0 then return answer(500, 'cseq', 0, 0, 0) end\n"
	"  return answer(200, 'replay', 0, 0, 0)\n"
	"end\n"
	"if after > maxc and after > before then return answer(403, 'max', 0, 0, 0) end\n"
	"if direct and KEYS[5] then\n"
	"  local no = nc_check()\n"
	"  if no then return no end\n"
	"end\n"
	"local added, refreshed, removed = 0, 0, 0\n"
	"local hs, dels = {}, {}\n"
	"for _, k in ipairs(keys) do\n"
	"  local op = ops[k]\n"
	"  local live = op[3]\n"
	"  if op[1] == 0 then\n"
	"    if live then\n"
	"      dels[#dels + 1], dels[#dels + 2] = k, M .. k\n"
	"      score[k] = nil\n"
	"      removed = removed + 1\n"
	"    end\n"
	"  else\n"
	"    local first, fs = now, nil\n"
	"    if live then\n"
	"      if op[5] == callid then first, fs = tonumber(op[4]), op[4] end\n"
	"      refreshed = refreshed + 1\n"
	"    else\n"
	"      added = added + 1\n"
	"      order[#order + 1] = k\n"
	"    end\n"
	"    local e = now + op[1] * 1000\n"
	"    local b = op[2] .. '\\16' .. varint(e) .. '\\112' .. varint(first)\n"
	"    hs[#hs + 1], hs[#hs + 2] = k, b\n"
	"    hs[#hs + 1], hs[#hs + 2] = M .. k, metaval(e, fs or string.format('%d', first))\n"
	"    score[k], blob[k] = e, b\n"
	"  end\n"
	"end\n"
	"if #dels > 0 then each('HDEL', reg, dels) end\n"
	"if #hs > 0 then each('HSET', reg, hs) end\n"
	/* The state after the writes. */
	"local live, top = {}, 0\n"
	"for _, k in ipairs(order) do\n"
	"  if score[k] then\n"
	"    live[#live + 1] = k\n"
	"    if score[k] > top then top = score[k] end\n"
	"  end\n"
	"end\n"
	"order = live\n"
	"if #live == 0 then\n"
	"  redis.call('DEL', reg, KEYS[2], KEYS[3])\n"
	"else\n"
	"  redis.call('PEXPIRE', reg, string.format('%d', top - now + "
	REGDATA_STR(REGDATA_TTL_SLACK_MS) "))\n"
	"end\n"
	"return answer(200, 'ok', added, refreshed, removed)\n";


/* KEYS: reg, cred. ARGV: call-id, cseq, HA1 field, HA1, binding key, expires in s
 * (> 0), packed Binding (C's part) [, Redis' time in unix ms as the edge's
 * regdata_clock has it; without it, TIME]. Returns what REGDATA_LUA_REGISTER returns for the
 * same request in refresh-only mode: {200, 'ok', 0, 1, 0, blob, seconds, ...} (every
 * live binding), {401, 'stale', 0, 0, 0, current HA1 or ""}, or {0, 'defer', 0, 0, 0}
 * with nothing written when the request is more than a refresh of a live binding
 * stored in the one-hash layout: an addition (none, or expired), an equal or older
 * CSeq in the Call-ID, a binding still in the three-key layout, an AOR of more than
 * 256 bindings, a time outside 1971-2109.
 *
 * Cost (issue 6): this is the script of most REGISTERs, so it is written for Redis'
 * instructions: ten arguments, keys included, where the general script takes
 * seventeen (Redis spends ~1 k instructions on each, turning it into a Lua string);
 * no functions
 * defined (every closure is an allocation per call); no tables when the binding is
 * the AOR's only one; the four calls of a refresh — HGET of the HA1 (RFC 7616 §3.4.5:
 * the HA1 the edge verified with is still the stored one), HGETALL, HSET, PEXPIRE —
 * and TIME only when the edge has no recent sample of Redis' clock. The nonce-count
 * is not Redis' any more: the edge that issued the nonce keeps it (docs/edge.md).
 * 132 k -> 112 k instructions per refresh in Redis with TIME, 104 k with the edge's
 * time, measured by pipelining 3,000 of them under callgrind (docs/performance.md). */
const char REGDATA_LUA_REFRESH[] =
	"local cur = redis.call('HGET', KEYS[2], ARGV[3])\n"
	"if cur ~= ARGV[4] then return {401, 'stale', 0, 0, 0, cur or ''} end\n"
	"local reg, callid, k = KEYS[1], ARGV[1], ARGV[5]\n"
	"local mk = '\\1' .. k\n"
	"local z = redis.call('HGETALL', reg)\n"
	"local now = tonumber(ARGV[8])\n"
	"if not now then\n"
	"  local t = redis.call('TIME')\n"
	"  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
	"end\n"
	"local out = {200, 'ok', 0, 1, 0, false, 0}\n"
	"local m, top, gone = nil, 0, nil\n"
	"if #z == 4 then\n"
	"  if z[1] == k and z[3] == mk then m = z[4]\n"
	"  elseif z[3] == k and z[1] == mk then m = z[2] end\n"
	"elseif #z > 4 and #z <= 1024 then\n"
	/* Other bindings: listed in the answer when live, purged when expired (what
	 * the general script's load() does), the request deferred when one is still
	 * in the three-key layout (the registrar moves it). */
	"  local v = {}\n"
	"  for i = 1, #z, 2 do v[z[i]] = z[i + 1] end\n"
	"  if v[k] then m = v[mk] end\n"
	"  gone = {}\n"
	"  for i = 1, #z, 2 do\n"
	"    local f = z[i]\n"
	"    if string.byte(f) == 1 then\n"
	"      if not v[string.sub(f, 2)] then gone[#gone + 1] = f end\n"
	"    elseif f ~= k then\n"
	"      local om = v['\\1' .. f]\n"
	"      if not om then return {0, 'defer', 0, 0, 0} end\n"
	"      local e = tonumber(string.match(om, '^%d+') or '0')\n"
	"      if e > now then\n"
	"        if e > top then top = e end\n"
	"        out[#out + 1] = z[i + 1]\n"
	"        out[#out + 1] = math.ceil((e - now) / 1000)\n"
	"      else\n"
	"        gone[#gone + 1], gone[#gone + 2] = f, '\\1' .. f\n"
	"      end\n"
	"    end\n"
	"  end\n"
	"end\n"
	"if not m then return {0, 'defer', 0, 0, 0} end\n"
	"local e0, c, rs, id = string.match(m, '^(%d+) (%d+) (%d+) (.*)$')\n"
	"if not e0 or tonumber(e0) <= now or\n"
	"   id == callid and tonumber(c) >= tonumber(ARGV[2]) then\n"
	"  return {0, 'defer', 0, 0, 0}\n"
	"end\n"
	"local secs = tonumber(ARGV[6])\n"
	"local e = now + secs * 1000\n"
	"if id ~= callid then rs = string.format('%d', now) end\n"
	"local first = tonumber(rs)\n"
	/* Both times as 6-byte varints (unix ms from 1971 to 2109), appended after
	 * fields 2 and 14's tags: see REGDATA_LUA_REGISTER. */
	"if e < 34359738368 or e >= 4398046511104 or first < 34359738368 or\n"
	"   first >= 4398046511104 then\n"
	"  return {0, 'defer', 0, 0, 0}\n"
	"end\n"
	"local x, y = e, first\n"
	"local a1 = x % 128; x = (x - a1) / 128\n"
	"local b1 = x % 128; x = (x - b1) / 128\n"
	"local c1 = x % 128; x = (x - c1) / 128\n"
	"local d1 = x % 128; x = (x - d1) / 128\n"
	"local f1 = x % 128; x = (x - f1) / 128\n"
	"local a2 = y % 128; y = (y - a2) / 128\n"
	"local b2 = y % 128; y = (y - b2) / 128\n"
	"local c2 = y % 128; y = (y - c2) / 128\n"
	"local d2 = y % 128; y = (y - d2) / 128\n"
	"local f2 = y % 128; y = (y - f2) / 128\n"
	"local b = ARGV[7] .. string.char(16, a1 + 128, b1 + 128, c1 + 128, d1 + 128,\n"
	"  f1 + 128, x, 112, a2 + 128, b2 + 128, c2 + 128, d2 + 128, f2 + 128, y)\n"
	"if gone and #gone > 0 then redis.call('HDEL', reg, unpack(gone)) end\n"
	"redis.call('HSET', reg, k, b, mk,\n"
	"  string.format('%d', e) .. ' ' .. ARGV[2] .. ' ' .. rs .. ' ' .. callid)\n"
	"if top > e then e = top end\n"
	"redis.call('PEXPIRE', reg, string.format('%d', e - now + "
	REGDATA_STR(REGDATA_TTL_SLACK_MS) "))\n"
	"out[6], out[7] = b, secs\n"
	"return out\n";
