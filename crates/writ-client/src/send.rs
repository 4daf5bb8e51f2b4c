//! Using a writ with reqwest: put it (and a DPoP proof) on a request, and send a request
//! once more with a fresh writ when the gateway answers `401 expired_writ`.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use http::{HeaderValue, StatusCode, header};
use reqwest::{Request, RequestBuilder, Response};

use crate::error::Error;
use crate::source::{Writ, WritSource};

/// Headers an SDK may have put a placeholder key in; the gateway reads the first it finds,
/// so only the writ is left.
const CREDENTIAL_HEADERS: [&str; 3] = ["x-api-key", "api-key", "x-goog-api-key"];
/// Largest 401 body read to find out why a writ was refused.
const MAX_REFUSAL_BYTES: usize = 64 * 1024;

impl WritSource {
    /// `request` with the current writ in `Authorization` (and a DPoP proof when the writ
    /// is bound), replacing any other credential header.
    pub async fn authorize(&self, request: RequestBuilder) -> Result<RequestBuilder, Error> {
        let (client, request) = request.build_split();
        let mut request = request.map_err(Error::Request)?;
        let writ = self.writ().await?;
        self.put_writ(&mut request, &writ)?;
        Ok(RequestBuilder::from_parts(client, request))
    }

    /// Sends `request` with the current writ. When the gateway answers `401 expired_writ`
    /// (the writ ran out on the way, or the clocks disagree) it is sent once more with a
    /// fresh writ; any other answer, and the second one, is returned as it is. A request
    /// whose body is a stream cannot be repeated and is not retried.
    pub async fn send(&self, request: RequestBuilder) -> Result<Response, Error> {
        let (client, request) = request.build_split();
        let mut request = request.map_err(Error::Request)?;
        let mut again = request.try_clone();
        let writ = self.writ().await?;
        self.put_writ(&mut request, &writ)?;
        let response = client.execute(request).await.map_err(Error::Send)?;
        if response.status() != StatusCode::UNAUTHORIZED {
            return Ok(response);
        }
        let Some(mut again) = again.take() else {
            return Ok(response);
        };
        let (response, expired) = refused_as_expired(response).await?;
        if !expired {
            return Ok(response);
        }
        self.inner.expired_retries.fetch_add(1, Ordering::Relaxed);
        let fresh = self.replace(&writ).await?;
        self.put_writ(&mut again, &fresh)?;
        client.execute(again).await.map_err(Error::Send)
    }

    fn put_writ(&self, request: &mut Request, writ: &Arc<Writ>) -> Result<(), Error> {
        let scheme = if writ.dpop_bound() { "DPoP" } else { "Bearer" };
        let mut value =
            HeaderValue::try_from(format!("{scheme} {}", writ.token())).map_err(|_| {
                Error::Config("the token endpoint issued a writ that is not a header value")
            })?;
        value.set_sensitive(true);
        let proof = match &self.inner.dpop {
            Some(key) if writ.dpop_bound() => Some(key.proof(
                request.method().as_str(),
                request.url().as_str(),
                Some(writ.token()),
                self.inner.clock.now(),
            )?),
            _ => None,
        };
        let headers = request.headers_mut();
        for name in CREDENTIAL_HEADERS {
            headers.remove(name);
        }
        headers.insert(header::AUTHORIZATION, value);
        headers.remove("dpop");
        if let Some(proof) = proof {
            let proof = HeaderValue::try_from(proof)
                .map_err(|_| Error::Config("a DPoP proof is not a header value"))?;
            headers.insert("dpop", proof);
        }
        Ok(())
    }
}

/// Reads a 401's body and says whether the gateway refused the writ as expired; returns
/// the response rebuilt so the caller can still read it.
async fn refused_as_expired(response: Response) -> Result<(Response, bool), Error> {
    let status = response.status();
    let version = response.version();
    let headers = response.headers().clone();
    let body = response.bytes().await.map_err(Error::Send)?;
    let expired = body.len() <= MAX_REFUSAL_BYTES
        && serde_json::from_slice::<serde_json::Value>(&body).is_ok_and(|v| names_expired_writ(&v));
    let mut rebuilt = http::Response::new(body);
    *rebuilt.status_mut() = status;
    *rebuilt.version_mut() = version;
    *rebuilt.headers_mut() = headers;
    Ok((Response::from(rebuilt), expired))
}

/// Whether an error body carries the code `expired_writ`, wherever its shape puts it
/// (OpenAI's `error.code`, or an extra member of Anthropic's or Google's shape).
fn names_expired_writ(v: &serde_json::Value) -> bool {
    match v {
        serde_json::Value::String(s) => s == "expired_writ",
        serde_json::Value::Object(map) => map.values().any(names_expired_writ),
        serde_json::Value::Array(list) => list.iter().any(names_expired_writ),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_code_in_each_error_shape() {
        let openai = serde_json::json!({"error": {"message": "The writ has expired; mint a new one.", "type": "authentication_error", "code": "expired_writ"}});
        let anthropic = serde_json::json!({"type": "error", "error": {"type": "authentication_error", "message": "…", "code": "expired_writ"}});
        let revoked = serde_json::json!({"error": {"code": "revoked_writ", "message": "expired_writ is not this"}});
        assert!(names_expired_writ(&openai));
        assert!(names_expired_writ(&anthropic));
        assert!(!names_expired_writ(&revoked));
    }
}
