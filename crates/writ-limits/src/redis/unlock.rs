//! An operator's unlock in Redis: forgetting strike keys by prefix (SCAN, then DEL).

use ::redis::Value;

use super::RedisLimiter;
use crate::error::{BackendError, Operation};
use crate::model::escape_into;

impl RedisLimiter {
    /// Forgets the failures and lock-outs of every key starting with `prefix` (SCAN, then
    /// DEL); returns those keys.
    pub async fn strike_forget_prefix(&self, prefix: &str) -> Result<Vec<String>, BackendError> {
        let mut escaped = String::with_capacity(prefix.len());
        escape_into(&mut escaped, prefix);
        // MATCH is a glob: its special characters in the prefix are matched literally.
        let mut glob = String::with_capacity(escaped.len());
        for c in escaped.chars() {
            if matches!(c, '*' | '?' | '[' | ']' | '\\') {
                glob.push('\\');
            }
            glob.push(c);
        }
        let mut conn = self.connection().await;
        let mut forgotten = std::collections::BTreeSet::new();
        for kind in ["writ:strike:", "writ:strike-lock:"] {
            let pattern = format!("{kind}{glob}*");
            let mut cursor: u64 = 0;
            loop {
                let (next, batch): (u64, Vec<String>) = ::redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(1000)
                    .query_async(&mut conn)
                    .await
                    .map_err(|e| BackendError::redis(Operation::StrikeForget, e))?;
                if !batch.is_empty() {
                    let _: Value = ::redis::cmd("DEL")
                        .arg(&batch)
                        .query_async(&mut conn)
                        .await
                        .map_err(|e| BackendError::redis(Operation::StrikeForget, e))?;
                    forgotten.extend(
                        batch
                            .iter()
                            .filter_map(|k| k.strip_prefix(kind))
                            .map(unescape),
                    );
                }
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
        Ok(forgotten.into_iter().collect())
    }

    /// Forgets `key`'s failures and lock-out. One `DEL`.
    pub async fn strike_forget(&self, key: &str) -> Result<(), BackendError> {
        let keys = Self::strike_keys(key);
        let mut conn = self.connection().await;
        let _: Value = ::redis::cmd("DEL")
            .arg(&keys[..])
            .query_async(&mut conn)
            .await
            .map_err(|e| BackendError::redis(Operation::StrikeForget, e))?;
        Ok(())
    }
}

/// The inverse of `escape_into`: `%XX` back to its character.
fn unescape(escaped: &str) -> String {
    let mut out = String::with_capacity(escaped.len());
    let mut rest = escaped;
    while let Some(i) = rest.find('%') {
        out.push_str(&rest[..i]);
        let code = rest
            .get(i + 1..i + 3)
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match code {
            Some(c) => {
                out.push(char::from(c));
                rest = &rest[i + 3..];
            }
            None => {
                out.push('%');
                rest = &rest[i + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unescape_inverts_escape() {
        for key in ["ns/token-client:3:a:b/::1", "100%=,:", "plain", "%", "%4"] {
            let mut escaped = String::new();
            escape_into(&mut escaped, key);
            assert_eq!(unescape(&escaped), key, "{escaped}");
        }
    }
}
