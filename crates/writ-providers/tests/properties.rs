//! Request inspection and parsing over generated bodies: never a panic, and facts read right.
#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use serde_json::json;
use writ_providers::openai::inspect_chat;
use writ_providers::{Dialect, RouteSpec, StreamMeter};

fn dialect(route: &str) -> Dialect {
    RouteSpec::find(route).expect("a route").dialect()
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = inspect_chat(&body);
    }

    #[test]
    fn arbitrary_event_stream_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..512), cut in 1usize..64) {
        let mut meter = StreamMeter::new(dialect("/model/{model}/converse"), false);
        for chunk in body.chunks(cut) {
            prop_assert_eq!(meter.feed(chunk), None);
        }
        let _ = writ_providers::bedrock::parse_path(&String::from_utf8_lossy(&body));
        let _ = writ_providers::bedrock::inspect(writ_providers::bedrock::Action::Converse, "m".into(), &body);
    }

    #[test]
    fn arbitrary_json_values_never_panic(model in any::<Option<String>>(), n in any::<i64>(), s in any::<bool>()) {
        let body = json!({"model": model, "messages": [{"role": "user", "content": "x"}], "max_tokens": n, "stream": s});
        let _ = inspect_chat(body.to_string().as_bytes());
    }

    #[test]
    fn the_output_cap_is_read_as_sent(text in ".{0,200}", cap in proptest::option::of(0u64..50)) {
        let mut body = json!({"model": "m", "messages": [{"role": "user", "content": text}]});
        if let Some(cap) = cap {
            body["max_tokens"] = json!(cap);
        }
        prop_assert_eq!(inspect_chat(body.to_string().as_bytes()).unwrap().max_output_tokens, cap);
    }
}

proptest! {
    #[test]
    fn sse_parser_never_panics_and_ignores_chunking(body in prop::collection::vec(any::<u8>(), 0..2048), cut in 1usize..64) {
        use writ_providers::sse::SseParser;
        let mut whole = SseParser::new();
        let mut expected = whole.push(&body);
        expected.extend(whole.finish());
        let mut pieces = SseParser::new();
        let mut got: Vec<_> = body.chunks(cut).flat_map(|c| pieces.push(c)).collect();
        got.extend(pieces.finish());
        prop_assert_eq!(got, expected);
    }

    #[test]
    fn filtered_streams_never_panic(body in prop::collection::vec(any::<u8>(), 0..2048), cut in 1usize..64, family in 0usize..5) {
        let family = [dialect("/v1/chat/completions"), dialect("/v1/messages"), dialect("/v1beta/models/{*model_action}"), dialect("/model/{model}/converse"), dialect("/mcp/{upstream}")][family];
        let mut m = StreamMeter::new(family, false);
        let mut filter = Identity;
        for c in body.chunks(cut) {
            let _ = m.feed_filtered(c, &mut filter);
        }
        let _ = m.finish_filtered(&mut filter);
    }

    #[test]
    fn stream_meter_never_panics(body in prop::collection::vec(any::<u8>(), 0..2048), cut in 1usize..64, drop in any::<bool>()) {
        let mut m = writ_providers::StreamMeter::new(dialect("/v1/chat/completions"), drop);
        for c in body.chunks(cut) {
            let _ = m.feed(c);
        }
        let _ = m.finish();
    }
}

/// Lets every text through as it comes.
struct Identity;

impl writ_providers::TextFilter for Identity {
    fn push(&mut self, _: writ_providers::Channel, text: &str) -> String {
        text.to_owned()
    }
    fn end(&mut self, _: writ_providers::Channel) -> String {
        String::new()
    }
    fn whole(&mut self, _: &str) -> Option<String> {
        None
    }
}
