//! Accept: size limits before anything is read, and the bounded body read.

pub(crate) mod url_credential;

use axum::body::{Body, Bytes};
use http::{HeaderMap, Uri, header};
use http_body_util::BodyExt;

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

/// After refusing a body as too large, how much more of it is read and thrown away, and
/// for how long, before the answer goes out: a connection closed with unread bytes is
/// reset, and the reset can reach the client before the 413 does.
const DRAIN_BYTES: usize = 1024 * 1024;
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(1);

/// Reads the whole body, refusing it as soon as it passes `limit` bytes (chunked bodies
/// declare no length up front); the rest of a refused body is drained, within bounds.
pub(crate) async fn read_body(mut body: Body, limit: usize) -> Result<Bytes, GatewayError> {
    let mut chunks: Vec<Bytes> = Vec::with_capacity(1);
    let mut len = 0;
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame.map_err(|_| GatewayError::BodyRead)?.into_data() else {
            continue;
        };
        len += data.len();
        if len > limit {
            drain(body).await;
            return Err(GatewayError::BodyTooLarge { limit });
        }
        chunks.push(data);
    }
    Ok(match chunks.len() {
        0 => Bytes::new(),
        1 => chunks.swap_remove(0),
        _ => Bytes::from(chunks.concat()),
    })
}

/// Reads and discards up to [`DRAIN_BYTES`] of what is left of `body`, for at most
/// [`DRAIN_TIME`].
async fn drain(mut body: Body) {
    let _ = tokio::time::timeout(DRAIN_TIME, async {
        let mut budget = DRAIN_BYTES;
        while budget > 0 {
            match body.frame().await {
                Some(Ok(frame)) => {
                    let n = frame.data_ref().map_or(0, |d| d.len());
                    budget = budget.saturating_sub(n);
                }
                _ => break,
            }
        }
    })
    .await;
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
        // Chunks are joined in order.
        let chunks = ["ab", "cd", "e"].map(|c| Ok::<_, std::io::Error>(Bytes::from(c)));
        let body = Body::from_stream(futures_util::stream::iter(chunks));
        assert_eq!(read_body(body, 1024).await.unwrap(), Bytes::from("abcde"));
    }

    /// A refused body is read on to its end (within bounds), so the connection is not
    /// closed with bytes unread, which would reset it under the client's feet.
    #[tokio::test]
    async fn the_rest_of_a_refused_body_is_drained_within_bounds() {
        let pulled = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = |n: usize| {
            let pulled = pulled.clone();
            futures_util::stream::iter((0..n).map(move |_| {
                pulled.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                Ok::<_, std::io::Error>(Bytes::from(vec![b'x'; 1024]))
            }))
        };
        // 100 KiB against a 64 KiB limit: every chunk is read.
        let body = Body::from_stream(counted(100));
        assert!(matches!(
            read_body(body, 64 * 1024).await,
            Err(GatewayError::BodyTooLarge { .. })
        ));
        assert_eq!(pulled.load(std::sync::atomic::Ordering::Relaxed), 100);
        // 8 MiB: reading stops about a MiB past the limit.
        pulled.store(0, std::sync::atomic::Ordering::Relaxed);
        let body = Body::from_stream(counted(8 * 1024));
        assert!(matches!(
            read_body(body, 64 * 1024).await,
            Err(GatewayError::BodyTooLarge { .. })
        ));
        let n = pulled.load(std::sync::atomic::Ordering::Relaxed);
        assert!((1024..=1200).contains(&n), "{n} chunks read");
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
