//! Accept: size limits before anything is read, and the bounded body read.

use axum::body::{Body, Bytes};
use http::{HeaderMap, Uri, header};
use http_body_util::{BodyExt, LengthLimitError, Limited};

use crate::error::GatewayError;

/// Refuses a request whose declared `Content-Length` exceeds `limit`, unread.
pub(crate) fn check_declared_length(headers: &HeaderMap, limit: usize) -> Result<(), GatewayError> {
    let Some(value) = headers.get(header::CONTENT_LENGTH) else {
        return Ok(());
    };
    let declared: u64 = value
        .to_str()
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .ok_or(GatewayError::InvalidHeader {
            name: "content-length",
        })?;
    if declared > limit as u64 {
        return Err(GatewayError::BodyTooLarge { limit });
    }
    Ok(())
}

/// A writ in the URL lands in every proxy and access log on the way: refuse it outright.
pub(crate) fn refuse_writ_in_url(uri: &Uri) -> Result<(), GatewayError> {
    if uri
        .query()
        .is_some_and(|q| q.contains(writ_token::WRIT_PREFIX))
    {
        return Err(GatewayError::WritInUrl);
    }
    Ok(())
}

/// Reads the whole body, refusing it as soon as it passes `limit` bytes (chunked bodies
/// declare no length up front).
pub(crate) async fn read_body(body: Body, limit: usize) -> Result<Bytes, GatewayError> {
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => {
            Err(GatewayError::BodyTooLarge { limit })
        }
        Err(_) => Err(GatewayError::BodyRead),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_length_over_limit_is_refused() {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_LENGTH, "20971520".parse().unwrap());
        assert!(matches!(
            check_declared_length(&h, 1024),
            Err(GatewayError::BodyTooLarge { limit: 1024 })
        ));
        h.insert(header::CONTENT_LENGTH, "-5".parse().unwrap());
        assert!(matches!(
            check_declared_length(&h, 1024),
            Err(GatewayError::InvalidHeader { .. })
        ));
        h.insert(header::CONTENT_LENGTH, "10".parse().unwrap());
        assert!(check_declared_length(&h, 1024).is_ok());
    }

    #[tokio::test]
    async fn streamed_body_over_limit_is_refused() {
        let body = Body::from(vec![b'x'; 2048]);
        assert!(matches!(
            read_body(body, 1024).await,
            Err(GatewayError::BodyTooLarge { .. })
        ));
        let body = Body::from(vec![b'x'; 10]);
        assert_eq!(read_body(body, 1024).await.unwrap().len(), 10);
    }

    #[test]
    fn writ_in_query_is_refused() {
        let uri: Uri = "/v1/chat/completions?key=writ_abc".parse().unwrap();
        assert!(matches!(
            refuse_writ_in_url(&uri),
            Err(GatewayError::WritInUrl)
        ));
        let uri: Uri = "/v1/chat/completions?x=1".parse().unwrap();
        assert!(refuse_writ_in_url(&uri).is_ok());
    }
}
