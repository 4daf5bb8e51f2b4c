//! Strikes in Redis: the scripts that record and read failed authentications per key, the
//! keys they use, and decoding their replies into a [`StrikeState`].
//!
//! **Strikes** (failed authentications, see [`StrikePolicy`]) are kept in **milliseconds**
//! as integers below 2^53 ([`STRIKE_MAX_MS`] caps times and durations at 2^52, so a sum of
//! two is exact too): a sorted set `writ:strike:{key}` of failure times (score: the time;
//! member: the time and a number unique in the set), and a string `writ:strike-lock:{key}`
//! holding when the lock-out ends. `{key}` is escaped (`%`, `,`, `=`, `:` as `%XX`), so
//! no key can name another's state. Both get a `PEXPIRE` of the window or the lock-out,
//! whichever is longer, on every write. A strike is one script: it reads the state, drops
//! failures out of the window, adds the failure, starts a lock-out (clearing the
//! failures) when it reaches the threshold or trims to [`StrikePolicy::kept`], and
//! returns what it read and wrote; the outcome is then computed from what it read by
//! [`StrikeState::strike`], as in memory, and checked against what it wrote.

use ::redis::Value;

use super::RedisLimiter;
use crate::error::{BackendError, Operation};
use crate::model::{
    STRIKE_MAX_MS, StrikeOutcome, StrikePolicy, StrikeState, StrikeVerdict, escape_into, strike_ms,
};

/// KEYS: failures (sorted set), lock (string). ARGV: now (ms), window (ms), lockout_after,
/// lockout (ms), kept, key TTL (ms); all integers below 2^53.
///
/// Returns `{locked_until after, failures after, locked_until before, failure times
/// before...}` as decimal strings (ms). While locked out it writes nothing.
pub(super) const STRIKE_LUA: &str = r#"
local failures, lock = KEYS[1], KEYS[2]
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local lockout_after = tonumber(ARGV[3])
local lockout = tonumber(ARGV[4])
local kept = tonumber(ARGV[5])
local ttl = ARGV[6]
local function dec(x) return string.format('%d', x) end
local locked = tonumber(redis.call('GET', lock) or '0')
if not locked then return redis.error_reply('malformed lock-out at ' .. lock) end
local prior = redis.call('ZRANGE', failures, 0, -1, 'WITHSCORES')
local out = {'', '', dec(locked)}
for i = 2, #prior, 2 do out[#out + 1] = dec(tonumber(prior[i])) end
if locked > now then
  out[1], out[2] = dec(locked), dec(#prior / 2)
  return out
end
if locked > 0 then redis.call('DEL', lock) end
redis.call('ZREMRANGEBYSCORE', failures, '-inf', dec(now - window))
local n = redis.call('ZCARD', failures)
local seq = n
local member = dec(now) .. ':' .. dec(seq)
while redis.call('ZSCORE', failures, member) do
  seq = seq + 1
  member = dec(now) .. ':' .. dec(seq)
end
redis.call('ZADD', failures, dec(now), member)
n = n + 1
if lockout_after > 0 and n >= lockout_after then
  local until_ = now + lockout
  redis.call('DEL', failures)
  redis.call('SET', lock, dec(until_), 'PX', ttl)
  out[1], out[2] = dec(until_), '0'
  return out
end
if n > kept then
  redis.call('ZREMRANGEBYRANK', failures, 0, n - kept - 1)
  n = kept
end
redis.call('PEXPIRE', failures, ttl)
out[1], out[2] = '0', dec(n)
return out
"#;

/// KEYS: failures (sorted set), lock (string). Returns `{locked_until, failure times...}` as
/// decimal strings (ms); writes nothing.
pub(super) const STRIKE_CHECK_LUA: &str = r#"
local out = {redis.call('GET', KEYS[2]) or '0'}
local prior = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
for i = 2, #prior, 2 do out[#out + 1] = string.format('%d', tonumber(prior[i])) end
return out
"#;

impl RedisLimiter {
    /// The Redis keys of strike key `key`: its failures (a sorted set) and its lock-out (a
    /// string).
    pub fn strike_keys(key: &str) -> [String; 2] {
        let mut escaped = String::with_capacity(key.len());
        escape_into(&mut escaped, key);
        [
            format!("writ:strike:{escaped}"),
            format!("writ:strike-lock:{escaped}"),
        ]
    }

    /// Whether `key` may try now, at `now_ns`; changes nothing. One script call.
    pub async fn strike_check(
        &self,
        key: &str,
        policy: &StrikePolicy,
        now_ns: u64,
    ) -> Result<StrikeVerdict, BackendError> {
        let [failures, lock] = Self::strike_keys(key);
        let mut conn = self.connection().await;
        let reply: Vec<String> = self
            .strike_check
            .key(&failures)
            .key(&lock)
            .invoke_async(&mut conn)
            .await
            .map_err(|e| BackendError::redis(Operation::StrikeCheck, e))?;
        let state = strike_state(&reply, Operation::StrikeCheck)?;
        Ok(state.verdict(strike_ms(now_ns), policy))
    }

    /// Records one failure of `key` at `now_ns` and reports the verdict after it (see
    /// [`StrikeState::strike`]). One script call, so strikes on one key from any number of
    /// gateways count exactly and each lock-out is reported started once.
    pub async fn strike(
        &self,
        key: &str,
        policy: &StrikePolicy,
        now_ns: u64,
    ) -> Result<StrikeOutcome, BackendError> {
        let now = strike_ms(now_ns);
        let [failures, lock] = Self::strike_keys(key);
        let mut conn = self.connection().await;
        let reply: Vec<String> = self
            .strike
            .key(&failures)
            .key(&lock)
            .arg(now)
            .arg(policy.window_ms())
            .arg(policy.lockout_after)
            .arg(policy.lockout_ms())
            .arg(policy.kept())
            .arg(policy.ttl_ms().min(STRIKE_MAX_MS))
            .invoke_async(&mut conn)
            .await
            .map_err(|e| BackendError::redis(Operation::Strike, e))?;
        let malformed = || BackendError::MalformedReply {
            op: Operation::Strike,
        };
        let [locked_after, count_after, prior @ ..] = reply.as_slice() else {
            return Err(malformed());
        };
        let locked_after: u64 = locked_after.parse().map_err(|_| malformed())?;
        let count_after: usize = count_after.parse().map_err(|_| malformed())?;
        let mut state = strike_state(prior, Operation::Strike)?;
        let outcome = state.strike(now, policy);
        if (locked_after, count_after) != (state.locked_until, state.failures.len()) {
            return Err(BackendError::Disagreement {
                op: Operation::Strike,
                key: failures,
            });
        }
        Ok(outcome)
    }

    /// Forgets `key`'s failures, not its lock-out: after a successful authentication. One
    /// `DEL`.
    pub async fn strike_clear(&self, key: &str) -> Result<(), BackendError> {
        let [failures, _] = Self::strike_keys(key);
        let mut conn = self.connection().await;
        let _: Value = ::redis::cmd("DEL")
            .arg(&failures)
            .query_async(&mut conn)
            .await
            .map_err(|e| BackendError::redis(Operation::StrikeClear, e))?;
        Ok(())
    }
}

/// A strike state from a script's reply: the lock-out's end, then the failure times (ms).
fn strike_state(reply: &[String], op: Operation) -> Result<StrikeState, BackendError> {
    let malformed = || BackendError::MalformedReply { op };
    let mut values = reply
        .iter()
        .map(|v| v.parse::<u64>().map_err(|_| malformed()));
    let locked_until = values.next().ok_or_else(malformed)??;
    let mut failures = values.collect::<Result<Vec<u64>, _>>()?;
    // Sorted-set order already; sorting again costs nothing and keeps the model's contract.
    failures.sort_unstable();
    Ok(StrikeState {
        failures,
        locked_until,
    })
}
