//! What the person deciding an approval is shown: exactly what will happen (upstream,
//! operation, model or tool, arguments), with secrets redacted, as inert data.
