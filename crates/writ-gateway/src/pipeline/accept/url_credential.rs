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
        .and_then(|pq| writ_detect::url::check_url(pq.as_str(), &gw.scanner))
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
