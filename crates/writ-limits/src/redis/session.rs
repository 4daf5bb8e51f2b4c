//! MCP session bindings in Redis: a string `writ:mcp-session:{digest}` holding the owner's
//! digest in hex, with a `PX` expiry. Binding is one script (read, then set only if absent),
//! so of any number of gateways binding the same session at once exactly one binds it and
//! the others learn to whom; ending is one script too (delete only if the owner matches).

use std::sync::LazyLock;

use ::redis::{Script, Value};

use super::RedisLimiter;
use crate::error::{BackendError, Operation};
use crate::replay::ttl_ms;
use crate::session::{Bound, SessionKey, SessionOwner};

/// KEYS: the binding. ARGV: owner (hex), TTL (ms). Returns the owner already bound, having
/// written nothing, or nil having bound ARGV[1].
const BIND_LUA: &str = r#"
local held = redis.call('GET', KEYS[1])
if held then return held end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return false
"#;

/// KEYS: the binding. ARGV: owner (hex). Deletes it only if it holds that owner; returns
/// how many keys were deleted.
const END_LUA: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"#;

static BIND: LazyLock<Script> = LazyLock::new(|| Script::new(BIND_LUA));
static END: LazyLock<Script> = LazyLock::new(|| Script::new(END_LUA));

fn failed(e: ::redis::RedisError) -> BackendError {
    BackendError::redis(Operation::Session, e)
}

/// The owner in a reply: nil is none, a string must be an owner's hex.
fn owner_of(reply: Value, key: &SessionKey) -> Result<Option<SessionOwner>, BackendError> {
    let text = match reply {
        Value::Nil => return Ok(None),
        Value::BulkString(bytes) => bytes,
        Value::SimpleString(s) => s.into_bytes(),
        _ => {
            return Err(BackendError::MalformedReply {
                op: Operation::Session,
            });
        }
    };
    SessionOwner::from_hex(&text)
        .map(Some)
        .ok_or_else(|| BackendError::MalformedState {
            op: Operation::Session,
            key: key.redis_key(),
        })
}

impl RedisLimiter {
    /// Binds `key` to `owner` until `expires_ns` (at least a millisecond past `now_ns`) if
    /// no gateway has bound it yet; an existing binding is left as it is. Reports what it
    /// found; [`BackendError`] when Redis cannot answer.
    pub async fn session_bind(
        &self,
        key: &SessionKey,
        owner: SessionOwner,
        expires_ns: u64,
        now_ns: u64,
    ) -> Result<Bound, BackendError> {
        let mut conn = self.connection().await;
        let reply: Value = BIND
            .key(key.redis_key())
            .arg(owner.to_hex())
            .arg(ttl_ms(expires_ns, now_ns))
            .invoke_async(&mut conn)
            .await
            .map_err(failed)?;
        Ok(Bound::of(owner_of(reply, key)?, owner))
    }

    /// Whom `key` is bound to, if anyone (an expired binding is gone, on Redis' clock).
    pub async fn session_owner(
        &self,
        key: &SessionKey,
    ) -> Result<Option<SessionOwner>, BackendError> {
        let mut conn = self.connection().await;
        let reply: Value = ::redis::cmd("GET")
            .arg(key.redis_key())
            .query_async(&mut conn)
            .await
            .map_err(failed)?;
        owner_of(reply, key)
    }

    /// Forgets `key`'s binding if it is bound to `owner`; `Ok(true)` if it was.
    pub async fn session_end(
        &self,
        key: &SessionKey,
        owner: SessionOwner,
    ) -> Result<bool, BackendError> {
        let mut conn = self.connection().await;
        let deleted: i64 = END
            .key(key.redis_key())
            .arg(owner.to_hex())
            .invoke_async(&mut conn)
            .await
            .map_err(failed)?;
        Ok(deleted > 0)
    }
}
