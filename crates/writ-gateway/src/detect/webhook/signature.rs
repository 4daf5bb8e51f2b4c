//! The webhook signature: HMAC-SHA256 over `"{id}.{timestamp}.{body}"`, made on delivery
//! and checked (in constant time) by receivers.

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The `Writ-Webhook-Signature` value for one attempt: `v1=` and the lowercase hex
/// HMAC-SHA256 of `"{id}.{timestamp}.{body}"` keyed with `secret`.
pub fn sign(secret: &[u8], id: &str, timestamp: &str, body: &[u8]) -> String {
    format!(
        "v1={}",
        hex::encode(mac(secret, id, timestamp, body).finalize().into_bytes())
    )
}

/// Whether `header` (a `Writ-Webhook-Signature` value, possibly several space-separated
/// `v1=…` entries) holds a valid signature of `id`, `timestamp` and `body` under `secret`.
/// Compares in constant time. Checking the timestamp's age is left to the caller.
pub fn verify_signature(
    secret: &[u8],
    id: &str,
    timestamp: &str,
    body: &[u8],
    header: &str,
) -> bool {
    header
        .split_ascii_whitespace()
        .filter_map(|entry| entry.strip_prefix("v1="))
        .filter_map(|h| hex::decode(h).ok())
        .any(|tag| mac(secret, id, timestamp, body).verify_slice(&tag).is_ok())
}

fn mac(secret: &[u8], id: &str, timestamp: &str, body: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length; `new_from_slice` only has a Result for MACs that
    // don't.
    let mut mac = <HmacSha256 as Mac>::new_from_slice(secret).expect("HMAC accepts any key length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::webhook::tests::SECRET;

    #[test]
    fn signature_matches_an_independent_implementation() {
        // python3: hmac.new(key, b'01ARZ3NDEKTSV4RRFFQ69G5FAV.1700000000.{"a":1}', sha256)
        let expected = "v1=eb2bae140c7f00093742077a17f88196f5eb31e41fe573773807b5401cf7b8a2";
        let (id, ts, body) = ("01ARZ3NDEKTSV4RRFFQ69G5FAV", "1700000000", br#"{"a":1}"#);
        assert_eq!(sign(SECRET.as_bytes(), id, ts, body), expected);
        assert!(verify_signature(SECRET.as_bytes(), id, ts, body, expected));
        let rotated = format!("v1=00ff {expected}");
        assert!(verify_signature(SECRET.as_bytes(), id, ts, body, &rotated));
        assert!(!verify_signature(
            SECRET.as_bytes(),
            id,
            ts,
            br#"{"a":2}"#,
            expected
        ));
        assert!(!verify_signature(
            SECRET.as_bytes(),
            id,
            "1700000001",
            body,
            expected
        ));
        assert!(!verify_signature(
            b"another-secret-value",
            id,
            ts,
            body,
            expected
        ));
        assert!(!verify_signature(SECRET.as_bytes(), id, ts, body, "v1=zz"));
        assert!(!verify_signature(
            SECRET.as_bytes(),
            id,
            ts,
            body,
            &expected[3..]
        ));
    }
}
