//! One-time ids in Redis: `SET writ:replay:{kind}:{digest} 1 NX PX ttl`, one command, so
//! of any number of gateways checking the same id at once exactly one is told it is first.
//! Keys are the fixed-size [`ReplayId::redis_key`], whatever the id, and expire on the
//! Redis clock once the id no longer needs remembering.

use ::redis::Value;

use super::RedisLimiter;
use crate::error::{BackendError, Operation};
use crate::replay::{ReplayError, ReplayId, ttl_ms};

impl RedisLimiter {
    /// Records `id` until `expires_ns` (at least a millisecond past `now_ns`) if no
    /// gateway has recorded it yet. `Ok(true)`: first use anywhere; `Ok(false)`: recorded
    /// before and not yet expired; [`ReplayError::Unavailable`] when Redis cannot answer.
    pub async fn first_use(
        &self,
        id: &ReplayId,
        expires_ns: u64,
        now_ns: u64,
    ) -> Result<bool, ReplayError> {
        let mut conn = self.connection().await;
        let reply: Value = ::redis::cmd("SET")
            .arg(id.redis_key())
            .arg(1)
            .arg("NX")
            .arg("PX")
            .arg(ttl_ms(expires_ns, now_ns))
            .query_async(&mut conn)
            .await
            .map_err(|e| BackendError::redis(Operation::Replay, e))?;
        match reply {
            Value::Okay => Ok(true),
            Value::Nil => Ok(false),
            Value::SimpleString(s) if s == "OK" => Ok(true),
            _ => Err(BackendError::MalformedReply {
                op: Operation::Replay,
            }
            .into()),
        }
    }
}
