//! Request-time approval: a request an approval rule matches is held (403
//! `approval_required`) until a person approves it; its retry passes once.
