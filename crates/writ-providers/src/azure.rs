//! Azure OpenAI: per-deployment endpoints (`/openai/deployments/{deployment}/…`), the
//! `api-key` header, and a deployment → model map so grants and prices see model names.
//! Bodies and usage are OpenAI's.

use http::HeaderValue;
use http::header::HeaderName;

use crate::inspect::{InspectError, Inspected};
use crate::route::Operation;
use crate::secret::UpstreamSecret;

/// Header carrying the API key.
pub const API_KEY: HeaderName = HeaderName::from_static("api-key");

/// The deployment and operation of a path such as
/// `/openai/deployments/prod-4o/chat/completions`; `None` for other paths.
pub fn parse_path(path: &str) -> Option<(String, Operation)> {
    let rest = path.strip_prefix("/openai/deployments/")?;
    let (deployment, action) = rest.split_once('/')?;
    if deployment.is_empty() {
        return None;
    }
    let operation = match action {
        "chat/completions" => Operation::Chat,
        "embeddings" => Operation::Embeddings,
        _ => return None,
    };
    Some((deployment.to_string(), operation))
}

/// Reads the request facts of an Azure body: OpenAI's shape, but the model is the
/// deployment's (the body's `model`, if any, is ignored by Azure and here).
pub fn inspect(
    operation: Operation,
    model: String,
    body: &[u8],
) -> Result<Inspected, InspectError> {
    let mut with_model = crate::openai::json_object(body)?;
    with_model.insert("model".into(), serde_json::Value::String(model.clone()));
    let bytes = serde_json::to_vec(&with_model).map_err(|_| InspectError::NotJson)?;
    let mut inspected = crate::openai::inspect(operation, &bytes)?;
    inspected.model = Some(model);
    // The body itself was read strictly above, whatever the operation reads of it.
    inspected.body_checked = true;
    Ok(inspected)
}

/// `api-key: <key>`, marked sensitive.
pub fn credential_headers(
    key: &UpstreamSecret,
) -> Result<Vec<(HeaderName, HeaderValue)>, http::header::InvalidHeaderValue> {
    let mut value = HeaderValue::try_from(key.expose())?;
    value.set_sensitive(true);
    Ok(vec![(API_KEY, value)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_deployment_paths() {
        assert_eq!(
            parse_path("/openai/deployments/prod/chat/completions"),
            Some(("prod".into(), Operation::Chat))
        );
        assert_eq!(
            parse_path("/openai/deployments/emb/embeddings"),
            Some(("emb".into(), Operation::Embeddings))
        );
        assert_eq!(parse_path("/openai/deployments//chat/completions"), None);
        assert_eq!(
            parse_path("/openai/deployments/prod/images/generations"),
            None
        );
        assert_eq!(parse_path("/openai/other"), None);
    }

    #[test]
    fn model_comes_from_the_deployment() {
        let got = inspect(
            Operation::Chat,
            "gpt-4o".into(),
            br#"{"messages":[],"model":"ignored","max_tokens":5}"#,
        )
        .unwrap();
        assert_eq!(
            (got.model.as_deref(), got.max_output_tokens),
            (Some("gpt-4o"), Some(5))
        );
        assert_eq!(
            inspect(Operation::Chat, "m".into(), b"[]").err(),
            Some(InspectError::NotObject)
        );
    }
}
