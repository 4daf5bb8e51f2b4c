//! Brute force at authenticate: an address that keeps presenting invalid writs is slowed
//! down, then locked out for a while (`writ unlock` lifts it early).

use crate::detect::brute_force;
use crate::error::GatewayError;
use crate::gateway::Gateway;
use crate::pipeline::RequestCtx;

/// Refuses the request when its client's address is throttled; ignoring the back-off
/// counts against the address. Requests without a known address are never throttled.
pub(crate) async fn check(gw: &Gateway, ctx: &RequestCtx) -> Result<(), GatewayError> {
    let Some(ip) = ctx.id.client else {
        return Ok(());
    };
    let Some(t) = brute_force::address_throttled(gw, ip) else {
        return Ok(());
    };
    let t = if t.locked {
        t
    } else {
        brute_force::invalid_writ_from(gw, ip).await.unwrap_or(t)
    };
    Err(GatewayError::AuthThrottled {
        retry_after_secs: t.retry_after_secs(),
        locked: t.locked,
    })
}

/// Counts a credential that failed verification against its client's address.
pub(crate) async fn failed(gw: &Gateway, ctx: &RequestCtx) {
    if let Some(ip) = ctx.id.client {
        brute_force::invalid_writ_from(gw, ip).await;
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::*;
    use crate::detect::detections::{Action, Detector};
    use crate::pipeline::fixture::Fixture;

    /// Back-off after 2 invalid writs from an address, block after 4.
    const POLICY: &str =
        "[detection.brute_force]\ndata_plane_backoff_after = 2\ndata_plane_block_after = 4\n";

    fn ctx(f: &Fixture, client: Option<&str>) -> RequestCtx {
        let client = client.map(|c| c.parse::<IpAddr>().unwrap());
        RequestCtx::new(&f.gw, writ_providers::ROUTES[0], client)
    }

    #[tokio::test]
    async fn a_request_without_an_address_is_never_throttled() {
        let f = Fixture::start(POLICY).await;
        let ctx = ctx(&f, None);
        for _ in 0..10 {
            failed(&f.gw, &ctx).await;
            assert!(check(&f.gw, &ctx).await.is_ok());
        }
    }

    #[tokio::test]
    async fn an_address_is_slowed_down_then_blocked() {
        let f = Fixture::start(POLICY).await;
        let ctx = ctx(&f, Some("192.0.2.7"));
        failed(&f.gw, &ctx).await;
        assert!(
            check(&f.gw, &ctx).await.is_ok(),
            "below the back-off threshold"
        );
        failed(&f.gw, &ctx).await;
        let err = check(&f.gw, &ctx).await.unwrap_err();
        assert!(
            matches!(err, GatewayError::AuthThrottled { locked: false, retry_after_secs } if retry_after_secs >= 1),
            "{err:?}"
        );
        assert_eq!(
            f.gw.detections
                .total(Detector::BruteForce, Action::Throttled),
            1
        );
        // Ignoring the back-off counts too: the fourth attempt blocks the address.
        let err = check(&f.gw, &ctx).await.unwrap_err();
        assert!(
            matches!(err, GatewayError::AuthThrottled { locked: true, .. }),
            "{err:?}"
        );
        assert_eq!(
            f.gw.detections
                .total(Detector::BruteForce, Action::LockedOut),
            1
        );
        // Blocked it stays, and attempts during the block are not counted.
        let err = check(&f.gw, &ctx).await.unwrap_err();
        assert!(matches!(
            err,
            GatewayError::AuthThrottled { locked: true, .. }
        ));
        assert_eq!(
            f.gw.detections
                .total(Detector::BruteForce, Action::LockedOut),
            1
        );
    }

    #[tokio::test]
    async fn another_address_is_not_throttled() {
        let f = Fixture::start(POLICY).await;
        let guesser = ctx(&f, Some("192.0.2.7"));
        for _ in 0..4 {
            failed(&f.gw, &guesser).await;
        }
        assert!(check(&f.gw, &guesser).await.is_err());
        assert!(check(&f.gw, &ctx(&f, Some("192.0.2.8"))).await.is_ok());
    }

    #[tokio::test]
    async fn in_monitor_mode_failures_are_counted_but_nobody_is_throttled() {
        let f = Fixture::start(&format!(
            "{POLICY}[detection.modes]\nbrute_force = \"monitor\"\n"
        ))
        .await;
        let ctx = ctx(&f, Some("192.0.2.7"));
        for _ in 0..6 {
            failed(&f.gw, &ctx).await;
            assert!(check(&f.gw, &ctx).await.is_ok());
        }
        assert!(
            f.gw.detections
                .total(Detector::BruteForce, Action::Monitored)
                >= 1
        );
    }
}
