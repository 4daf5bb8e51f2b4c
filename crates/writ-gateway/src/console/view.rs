//! The console's pages as typed templates (askama, HTML-escaped by default), and the
//! inert form of text that came from agents.

use askama::Template;
use axum::response::{Html, IntoResponse, Response};
use http::StatusCode;

use super::session::{Role, Session};

/// `page` rendered as a 200 HTML response; a template that fails to render answers 503
/// in plain text (the refusal page is a template too).
pub(crate) fn html(page: impl Template) -> Response {
    match page.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "console: a page could not be drawn");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "The console could not draw this page. Try again; if it persists, the gateway's log says why.",
            )
                .into_response()
        }
    }
}

/// What every page's frame shows: its title and, when signed in, who and the sign-out
/// form.
pub(crate) struct Frame {
    /// The page's title.
    pub(crate) title: String,
    /// The signed-in person's navigation; `None` on the sign-in and refusal pages.
    pub(crate) nav: Option<Nav>,
}

/// The navigation of a signed-in person.
pub(crate) struct Nav {
    /// Their name.
    pub(crate) person: String,
    /// The tenant they act on, or "every tenant".
    pub(crate) scope: String,
    /// The session's CSRF token, for the sign-out form.
    pub(crate) csrf: String,
    /// Whether the agents page is theirs (admins).
    pub(crate) admin: bool,
}

impl Frame {
    /// The frame of a page shown without a session.
    pub(crate) fn anonymous(title: &str) -> Self {
        Frame {
            title: title.to_string(),
            nav: None,
        }
    }

    /// The frame of a page shown to `session`.
    pub(crate) fn signed_in(title: &str, session: &Session) -> Self {
        Frame {
            title: title.to_string(),
            nav: Some(Nav {
                person: inert(&session.person),
                scope: session
                    .tenant
                    .as_deref()
                    .map_or_else(|| "every tenant".to_string(), |t| format!("tenant {t}")),
                csrf: session.csrf().to_string(),
                admin: session.role == Role::Admin,
            }),
        }
    }
}

/// A refusal.
#[derive(Template)]
#[template(path = "console/refusal.html")]
pub(crate) struct RefusalPage {
    pub(crate) frame: Frame,
    pub(crate) status: u16,
    pub(crate) message: String,
}

/// The sign-in page.
#[derive(Template)]
#[template(path = "console/sign_in.html")]
pub(crate) struct SignInPage {
    pub(crate) frame: Frame,
    /// Why the last attempt failed.
    pub(crate) error: Option<String>,
}

/// Approvals, each with its decision forms when pending.
#[derive(Template)]
#[template(path = "console/approvals.html")]
pub(crate) struct ApprovalsPage {
    pub(crate) frame: Frame,
    pub(crate) heading: String,
    pub(crate) csrf: String,
    pub(crate) approvals: Vec<ApprovalItem>,
}

/// One approval as shown: every text inert.
pub(crate) struct ApprovalItem {
    pub(crate) id: String,
    pub(crate) tenant: String,
    pub(crate) agent: String,
    pub(crate) status: String,
    pub(crate) pending: bool,
    pub(crate) reason: String,
    pub(crate) upstream: String,
    pub(crate) tool: String,
    pub(crate) operation: String,
    /// Argument names and values (values as JSON text).
    pub(crate) arguments: Vec<(String, String)>,
    /// The summary's other fields.
    pub(crate) details: Vec<(String, String)>,
    /// RFC 3339.
    pub(crate) expires: String,
    /// Who decided, and why, when decided.
    pub(crate) decision: Option<String>,
}

/// The operator's tenant list.
#[derive(Template)]
#[template(path = "console/tenants.html")]
pub(crate) struct TenantsPage {
    pub(crate) frame: Frame,
    pub(crate) csrf: String,
    pub(crate) tenants: Vec<String>,
}

/// Whether `c` changes how text around it reads without being seen: control characters,
/// bidirectional overrides and isolates, zero-width characters, and other invisible
/// format characters.
fn invisible(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}'
            | '\u{17B5}' | '\u{180B}'..='\u{180E}' | '\u{200B}'..='\u{200F}'
            | '\u{2028}'..='\u{202E}' | '\u{2060}'..='\u{206F}' | '\u{3164}'
            | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}' | '\u{FFA0}' | '\u{FFF9}'..='\u{FFFB}'
            | '\u{E0000}'..='\u{E007F}')
}

/// `text` as the console shows text it did not write: every invisible or
/// direction-changing character replaced by its code point in brackets (`[U+202E]`), so
/// what a person approves reads as what it is. Markup is escaped by the templates.
pub(crate) fn inert(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if invisible(c) {
            out.push_str(&format!("[U+{:04X}]", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    out
}

/// Unix seconds as RFC 3339.
pub(crate) fn rfc3339(secs: u64) -> String {
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs))
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invisible_characters_are_named() {
        assert_eq!(
            inert("a\u{202E}b\u{200B}c\n"),
            "a[U+202E]b[U+200B]c[U+000A]"
        );
        assert_eq!(inert("<b>é</b>"), "<b>é</b>");
    }
}
