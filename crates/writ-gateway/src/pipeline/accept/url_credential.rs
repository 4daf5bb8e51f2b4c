//! The `url_credential` detector, at accept: a credential in the URL's path or query ends
//! up in every proxy and access log on the way, so it is refused (or reported) before
//! anything else is done with the request.

use crate::detect::detections::{Action, Detector, Mode};
use crate::error::GatewayError;
use crate::gateway::Gateway;
use crate::pipeline::RequestCtx;

/// The `url_credential` detector: a credential in the path or query. It runs before the
/// writ is verified, so it takes the default mode.
pub(crate) async fn check(
    gw: &Gateway,
    ctx: &mut RequestCtx,
    uri: &http::Uri,
) -> Result<(), GatewayError> {
    let mode = gw.detections.mode(Detector::UrlCredential, None);
    if mode == Mode::Off {
        return Ok(());
    }
    let Some(finding) = uri
        .path_and_query()
        .and_then(|pq| writ_detect::url::check_url(pq.as_str(), &gw.scanner()))
    else {
        return Ok(());
    };
    let location = match &finding.location {
        writ_detect::url::UrlLocation::QueryParam { name: Some(n), .. } => {
            format!("query parameter `{n}`")
        }
        writ_detect::url::UrlLocation::QueryParam { index, .. } => {
            format!("query parameter #{}", index + 1)
        }
        writ_detect::url::UrlLocation::PathSegment { index } => {
            format!("path segment #{}", index + 1)
        }
    };
    let rule = finding.rule.id();
    let action = if mode == Mode::Block {
        Action::Blocked
    } else {
        Action::Monitored
    };
    let mut d = ctx.id.detection(Detector::UrlCredential, action, "url");
    d.rules = vec![rule.to_string()];
    d.count = 1;
    if mode == Mode::Block {
        gw.detected(d.clone(), false).await;
        ctx.detection = Some(d);
        return Err(GatewayError::CredentialInUrl { location, rule });
    }
    gw.detected(d, true).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::fixture::Fixture;

    /// An OpenAI project key, as the scanner's rule recognises it.
    const KEY: &str = "sk-proj-Ab3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY";

    async fn in_mode(mode: &str) -> Fixture {
        Fixture::start(&format!("[detection.modes]\nurl_credential = \"{mode}\"\n")).await
    }

    fn ctx(f: &Fixture) -> RequestCtx {
        RequestCtx::new(&f.gw, writ_providers::ROUTES[0], None)
    }

    fn uri(text: &str) -> http::Uri {
        text.parse().unwrap()
    }

    fn total(f: &Fixture, action: Action) -> u64 {
        f.gw.detections.total(Detector::UrlCredential, action)
    }

    #[tokio::test]
    async fn block_refuses_a_key_in_a_query_parameter_and_keeps_the_detection() {
        let f = in_mode("block").await;
        let mut ctx = ctx(&f);
        let url = uri(&format!("/v1/chat/completions?stream=true&api_key={KEY}"));
        let err = check(&f.gw, &mut ctx, &url).await.unwrap_err();
        let GatewayError::CredentialInUrl { location, rule } = err else {
            panic!("expected CredentialInUrl, got {err:?}");
        };
        assert_eq!(location, "query parameter `api_key`");
        let d = ctx
            .detection
            .take()
            .expect("the refusing detection, for the record");
        assert_eq!(d.detector, Detector::UrlCredential);
        assert_eq!(d.action, Action::Blocked);
        assert_eq!(d.location, "url");
        assert_eq!(d.rules, vec![rule.to_string()]);
        assert_eq!(d.count, 1);
        assert_eq!(d.operation.as_deref(), Some(ctx.id.operation));
        assert_eq!(total(&f, Action::Blocked), 1);
    }

    #[tokio::test]
    async fn block_refuses_a_key_in_a_path_segment() {
        let f = in_mode("block").await;
        let mut ctx = ctx(&f);
        let url = uri(&format!("/v1/{KEY}/chat/completions"));
        let err = check(&f.gw, &mut ctx, &url).await.unwrap_err();
        let GatewayError::CredentialInUrl { location, rule } = err else {
            panic!("expected CredentialInUrl, got {err:?}");
        };
        assert_eq!(location, "path segment #2");
        assert_eq!(rule, "openai-api-key");
        assert!(ctx.detection.is_some());
    }

    #[tokio::test]
    async fn monitor_lets_it_through_and_counts_it() {
        let f = in_mode("monitor").await;
        let mut ctx = ctx(&f);
        let url = uri(&format!("/v1/chat/completions?key={KEY}"));
        assert!(check(&f.gw, &mut ctx, &url).await.is_ok());
        // Nothing refused the request: its record carries no detection.
        assert!(ctx.detection.is_none());
        assert_eq!(total(&f, Action::Monitored), 1);
        assert_eq!(total(&f, Action::Blocked), 0);
    }

    #[tokio::test]
    async fn off_neither_refuses_nor_counts() {
        let f = in_mode("off").await;
        let mut ctx = ctx(&f);
        let url = uri(&format!("/v1/chat/completions?key={KEY}"));
        assert!(check(&f.gw, &mut ctx, &url).await.is_ok());
        assert!(ctx.detection.is_none());
        assert_eq!(total(&f, Action::Monitored), 0);
        assert_eq!(total(&f, Action::Blocked), 0);
    }

    #[tokio::test]
    async fn a_clean_url_passes() {
        let f = in_mode("block").await;
        let mut ctx = ctx(&f);
        for url in [
            "/v1/chat/completions",
            "/v1/chat/completions?stream=true&pageToken=abc123",
            "/v1beta/models/gemini-1.5-pro:generateContent?alt=sse",
        ] {
            assert!(check(&f.gw, &mut ctx, &uri(url)).await.is_ok(), "{url}");
        }
        assert!(ctx.detection.is_none());
        assert_eq!(total(&f, Action::Blocked), 0);
    }

    #[tokio::test]
    async fn the_default_mode_applies_whatever_the_tenant() {
        // Before the writ is verified, no tenant's override can be trusted.
        let f = Fixture::start("[detection.tenants.acme]\nurl_credential = \"off\"\n").await;
        let mut ctx = ctx(&f);
        ctx.id.tenant = Some("acme".into());
        let url = uri(&format!("/v1/chat/completions?key={KEY}"));
        let err = check(&f.gw, &mut ctx, &url).await.unwrap_err();
        assert!(matches!(err, GatewayError::CredentialInUrl { .. }));
    }
}
