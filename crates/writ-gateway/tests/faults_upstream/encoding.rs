//! The upstream compresses its answer though the gateway asked for it uncompressed (it
//! strips `Accept-Encoding`): bytes the gateway cannot read cannot be scanned nor metered,
//! and a client's HTTP library would decompress them — with the upstream's key in them.

use reqwest::StatusCode;

use crate::fault_gateway::{Api, FaultGateway, KEY};
use crate::hostile::{Act, Hostile, head};

/// `data` as a gzip member of stored (uncompressed) deflate blocks of `block` bytes: the
/// text is all there for a decompressing client, yet no run of more than `block` bytes of
/// it is contiguous on the wire.
fn gzip_stored(data: &[u8], block: usize) -> Vec<u8> {
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    let blocks: Vec<&[u8]> = data.chunks(block).collect();
    for (i, piece) in blocks.iter().enumerate() {
        out.push(u8::from(i + 1 == blocks.len()));
        let len = piece.len() as u16;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(piece);
    }
    out.extend_from_slice(&crc32(data).to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for byte in data {
        crc ^= u32::from(*byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// The answer an upstream gives that echoes the credential it was sent, compressed.
fn echoing_gzip(content_type: &str) -> Vec<u8> {
    let body = gzip_stored(format!("{{\"echo\":\"Bearer {KEY}\"}}").as_bytes(), 6);
    let mut sent = head(
        200,
        content_type,
        &format!(
            "content-encoding: gzip\r\ncontent-length: {}\r\n",
            body.len()
        ),
    );
    sent.extend_from_slice(&body);
    sent
}

async fn a_compressed_answer_is_refused(api: Api, content_type: &'static str) {
    let hostile =
        Hostile::start(move |_| vec![Act::Send(echoing_gzip(content_type)), Act::Close]).await;
    let fg = FaultGateway::start(api, hostile, "").await;
    let answer = fg.call(false).await;
    assert_eq!(
        answer.status,
        StatusCode::BAD_GATEWAY,
        "{api:?}: {}",
        answer.text()
    );
    assert_eq!(answer.error_code(api), "upstream_invalid_response");
    let calls = fg.hostile_calls().await;
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0]["status"], 502);
    fg.assert_slot_freed().await;
}

#[test]
fn the_compressed_echo_hides_the_key_from_a_byte_scanner() {
    let sent = echoing_gzip("application/json");
    assert!(!sent.windows(KEY.len()).any(|w| w == KEY.as_bytes()));
    assert!(!sent.windows(8).any(|w| w == b"sk-hosti"));
}

#[tokio::test]
async fn a_compressed_answer_from_a_plain_http_upstream_is_refused_not_passed_on() {
    a_compressed_answer_is_refused(Api::Http, "application/json").await;
    a_compressed_answer_is_refused(Api::Http, "text/plain").await;
}

#[tokio::test]
async fn a_compressed_answer_on_an_openai_route_is_refused() {
    a_compressed_answer_is_refused(Api::OpenAi, "application/json").await;
    a_compressed_answer_is_refused(Api::OpenAi, "text/event-stream").await;
}
