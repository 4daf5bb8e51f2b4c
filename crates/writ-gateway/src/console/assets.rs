//! The console's stylesheet and script, embedded in the binary (no CDN, no build step).

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, header};

/// The stylesheet: light and dark by `prefers-color-scheme`, laptop and phone widths.
const STYLESHEET: &str = include_str!("../../assets/console/console.css");
/// The tab's icon (a browser asks for one; without it, a 404 in its console).
const FAVICON: &str = include_str!("../../assets/console/favicon.svg");
/// The one script: a confirmation before a stop is sent, the passkey prompts, and the
/// live parts of the usage and detections pages.
const SCRIPT: &str = include_str!("../../assets/console/console.js");

fn asset(body: &'static str, content_type: &'static str) -> Response {
    let mut response = body.into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// `GET /console/assets/console.css`.
pub(crate) async fn stylesheet() -> Response {
    asset(STYLESHEET, "text/css; charset=utf-8")
}

/// `GET /console/assets/console.js`.
pub(crate) async fn script() -> Response {
    asset(SCRIPT, "text/javascript; charset=utf-8")
}

/// `GET /console/assets/favicon.svg`.
pub(crate) async fn favicon() -> Response {
    asset(FAVICON, "image/svg+xml")
}
