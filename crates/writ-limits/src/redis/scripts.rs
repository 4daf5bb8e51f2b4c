//! The Lua scripts that reserve and settle limits in Redis, and the exact 64-bit arithmetic
//! they share: a reservation, a batch of settlements, and a batch of settlements followed by
//! a reservation in one call (so a serving thread's queued settlements ride with its next
//! request's reservation instead of costing a round trip of their own).
//!
//! Each script is assembled from the same two Lua functions, `settle` and `reserve`, so the
//! combined one does exactly what the two do one after the other.

/// Shared by every script: exact unsigned 64-bit arithmetic on decimal strings, as pairs of
/// base-10^9 limbs (high, low) passed and returned as two Lua numbers (no table per value:
/// measured, the tables were about a third of a reservation's Lua time); both limbs stay
/// far below 2^53. A call whose last argument is `parse(…)` or another pair-returning
/// call receives both limbs; anywhere else Lua would keep only the first.
const LIMBS_LUA: &str = r#"
local B = 1000000000
local function parse(s)
  local n = #s
  if n <= 9 then return 0, tonumber(s) end
  return tonumber(string.sub(s, 1, n - 9)), tonumber(string.sub(s, n - 8))
end
local MAXH, MAXL = 18446744073, 709551615
local function lt(ah, al, bh, bl) return ah < bh or (ah == bh and al < bl) end
local function add(ah, al, bh, bl)
  local hi, lo = ah + bh, al + bl
  if lo >= B then hi, lo = hi + 1, lo - B end
  if lt(MAXH, MAXL, hi, lo) then return MAXH, MAXL end
  return hi, lo
end
local function sub(ah, al, bh, bl)
  if lt(ah, al, bh, bl) then return 0, 0 end
  local hi, lo = ah - bh, al - bl
  if lo < 0 then hi, lo = hi - 1, lo + B end
  return hi, lo
end
local function str(hi, lo)
  if hi == 0 then return string.format('%d', lo) end
  return string.format('%d%09d', hi, lo)
end
local function ms_ceil(hi, lo) return hi * 1000 + math.ceil(lo / 1000000) end
"#;

/// `reserve(k0, a0)` reserves the charges whose keys are `KEYS[k0 + 1..]`, reading its
/// arguments from `ARGV[a0 + 1..]`: now_ns, now_us, id, how long (ms) a rate key outlives
/// its tolerance, then six per charge:
/// - `rate`, amount, limit, burst, increment of amount, increment of burst (the tolerance)
/// - `budget`, amount, limit, window_end_ns, expire-at (ms), unused
/// - `leases`, amount, limit, ttl_ns, lease expiry (us), key TTL (ms)
///
/// Returns `{'0', index (0-based, among its charges), prior}` for the first charge that
/// refuses, having written nothing, or `{'1', prior...}` having applied every charge. A prior
/// is the arrival time, the units used, or the leases other reservations hold.
const RESERVE_FN: &str = r#"
local function reserve(k0, a0)
  local nh, nl = parse(ARGV[a0 + 1])
  local now_us = ARGV[a0 + 2]
  local id = ARGV[a0 + 3]
  local keep_ms = tonumber(ARGV[a0 + 4])
  local n = #KEYS - k0
  local priors, plans = {}, {}
  for i = 1, n do
    local a = a0 + 4 + (i - 1) * 6
    local kind, key = ARGV[a + 1], KEYS[k0 + i]
    if kind == 'rate' then
      local v = redis.call('GET', key) or '0'
      local th, tl = parse(v)
      if lt(th, tl, nh, nl) then th, tl = nh, nl end
      local wh, wl = add(th, tl, parse(ARGV[a + 5]))
      local ah, al = sub(wh, wl, nh, nl)
      local oh, ol = parse(ARGV[a + 6])
      local bh, bl = parse(ARGV[a + 4])
      local xh, xl = parse(ARGV[a + 2])
      if lt(bh, bl, xh, xl) or lt(oh, ol, ah, al) then
        return {'0', tostring(i - 1), v}
      end
      priors[i] = v
      plans[i] = {str(wh, wl), string.format('%d', ms_ceil(add(ah, al, oh, ol)) + keep_ms)}
    elseif kind == 'budget' then
      local v = redis.call('GET', key) or '0'
      local vh, vl = parse(v)
      local th, tl = add(vh, vl, parse(ARGV[a + 2]))
      local lh, ll = parse(ARGV[a + 3])
      if lt(lh, ll, th, tl) then return {'0', tostring(i - 1), v} end
      priors[i] = v
      plans[i] = {str(th, tl)}
    elseif kind == 'leases' then
      local held = redis.call('ZCOUNT', key, '(' .. now_us, '+inf')
      local own = redis.call('ZSCORE', key, id)
      if own and tonumber(own) > tonumber(now_us) then held = held - 1 end
      local v = string.format('%d', held)
      if not lt(0, held, parse(ARGV[a + 3])) then return {'0', tostring(i - 1), v} end
      priors[i] = v
    else
      return redis.error_reply('unknown counting ' .. tostring(kind))
    end
  end
  for i = 1, n do
    local a = a0 + 4 + (i - 1) * 6
    local kind, key = ARGV[a + 1], KEYS[k0 + i]
    if kind == 'rate' then
      redis.call('SET', key, plans[i][1], 'PX', plans[i][2])
    elseif kind == 'budget' then
      redis.call('SET', key, plans[i][1])
      redis.call('PEXPIREAT', key, ARGV[a + 5])
    else
      redis.call('ZREMRANGEBYSCORE', key, '-inf', now_us)
      redis.call('ZADD', key, ARGV[a + 5], id)
      if redis.call('PTTL', key) < tonumber(ARGV[a + 6]) then
        redis.call('PEXPIRE', key, ARGV[a + 6])
      end
    end
  end
  local out = {'1'}
  for i = 1, n do out[i + 1] = priors[i] end
  return out
end
"#;

/// `settle(n, a0)` settles the charges whose keys are `KEYS[1..n]`, of one reservation or of
/// several (a batch), reading three arguments per charge from `ARGV[a0 + 1..]`:
/// - `rate`, increment of the actual amount, increment of the reserved amount
/// - `budget`, actual amount, reserved amount
/// - `leases`, the reservation's id, unused
///
/// Returns nothing, or an error reply (having applied the charges before it). A rate or
/// budget key that has expired meanwhile is left absent: its state no longer counts.
const SETTLE_FN: &str = r#"
local function settle(n, a0)
  for i = 1, n do
    local a = a0 + (i - 1) * 3
    local kind, key = ARGV[a + 1], KEYS[i]
    if kind == 'rate' or kind == 'budget' then
      local v = redis.call('GET', key)
      if v then
        local vh, vl = parse(v)
        local ph, pl = parse(ARGV[a + 2])
        local mh, ml = parse(ARGV[a + 3])
        local sh, sl = add(vh, vl, ph, pl)
        redis.call('SET', key, str(sub(sh, sl, mh, ml)), 'KEEPTTL')
        if kind == 'rate' and lt(mh, ml, ph, pl) then
          local pttl = redis.call('PTTL', key)
          if pttl > 0 then
            redis.call('PEXPIRE', key, string.format('%d', pttl + ms_ceil(sub(ph, pl, mh, ml))))
          end
        end
      end
    elseif kind == 'leases' then
      redis.call('ZREM', key, ARGV[a + 2])
    else
      return redis.error_reply('unknown counting ' .. tostring(kind))
    end
  end
  return nil
end
"#;

/// The reservation script: every key is a charge; ARGV as `reserve` reads them from 1.
pub(super) fn reserve_lua() -> String {
    format!("{LIMBS_LUA}{RESERVE_FN}\nreturn reserve(0, 0)\n")
}

/// The settlement script: every key is a charge settled; ARGV as `settle` reads them from 1.
/// Returns `OK`.
pub(super) fn settle_lua() -> String {
    format!("{LIMBS_LUA}{SETTLE_FN}\nreturn settle(#KEYS, 0) or 'OK'\n")
}

/// Settlements, then a reservation, in one script. ARGV[1] is `n`, how many of the KEYS are
/// charges settled (the first `n`; the rest are the reservation's), then the settlements'
/// arguments (three per key), then the reservation's. Replies as the reservation does:
/// the settlements apply whether it is admitted or refused. An error reply from a settlement
/// comes back instead, with no reservation made.
pub(super) fn settle_then_reserve_lua() -> String {
    format!(
        "{LIMBS_LUA}{SETTLE_FN}{RESERVE_FN}
local n = tonumber(ARGV[1])
local failed = settle(n, 1)
if failed then return failed end
return reserve(n, 1 + 3 * n)
"
    )
}
