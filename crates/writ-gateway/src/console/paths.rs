//! The console's fixed paths, shared by its routes, redirects and sign-in checks.

/// The sign-in page.
pub(crate) const SIGN_IN: &str = "/console/sign-in";
/// Where a sign-in posts to.
pub(crate) const SESSION: &str = "/console/session";
/// Where a signed-in person lands: the pending approvals.
pub(crate) const HOME: &str = "/console/approvals";
