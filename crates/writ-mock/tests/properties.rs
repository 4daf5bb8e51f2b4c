//! The mocks' answers over generated bodies: never a panic, and usage adds up.
#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use serde_json::json;
use writ_mock::Reply;
use writ_mock::reply::{chat_completion, generate_content, messages};

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = chat_completion(&body, 0);
        let _ = messages(&body, 0);
        let _ = generate_content("m", true, &body);
    }

    #[test]
    fn arbitrary_json_values_never_panic(model in any::<Option<String>>(), n in any::<i64>(), s in any::<bool>()) {
        let body = json!({"model": model, "messages": [{"role": "user", "content": "x"}], "max_tokens": n, "stream": s});
        let _ = chat_completion(body.to_string().as_bytes(), 0);
        let _ = messages(body.to_string().as_bytes(), 0);
    }

    #[test]
    fn usage_adds_up_and_respects_the_cap(text in ".{0,200}", cap in proptest::option::of(0u64..50)) {
        let mut body = json!({"model": "m", "messages": [{"role": "user", "content": text}]});
        if let Some(cap) = cap {
            body["max_tokens"] = json!(cap);
        }
        let Reply::Json(v) = chat_completion(body.to_string().as_bytes(), 0).unwrap() else {
            panic!("not streamed")
        };
        let u = &v["usage"];
        let (p, c, t) = (u["prompt_tokens"].as_u64().unwrap(), u["completion_tokens"].as_u64().unwrap(), u["total_tokens"].as_u64().unwrap());
        prop_assert_eq!(t, p + c);
        if let Some(cap) = cap {
            prop_assert!(c <= cap);
        }
    }
}
