//! Reading grant values by hand where an untagged enum would do: so a wrong value is
//! refused with the field's allowed shapes, not "did not match any variant of untagged enum".

use serde::Deserialize;

use super::{ArgValue, Constraint};

impl<'de> Deserialize<'de> for ArgValue {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ArgValueVisitor)
    }
}

struct ArgValueVisitor;

impl serde::de::Visitor<'_> for ArgValueVisitor {
    type Value = ArgValue;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an argument value: a string, an integer, true, false or null")
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<ArgValue, E> {
        Ok(ArgValue::Null)
    }
    fn visit_none<E: serde::de::Error>(self) -> Result<ArgValue, E> {
        Ok(ArgValue::Null)
    }
    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<ArgValue, E> {
        Ok(ArgValue::Bool(v))
    }
    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<ArgValue, E> {
        Ok(ArgValue::Int(v))
    }
    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<ArgValue, E> {
        i64::try_from(v).map(ArgValue::Int).map_err(|_| {
            E::custom(format!(
                "argument value {v} is too large: integers are at most {}",
                i64::MAX
            ))
        })
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<ArgValue, E> {
        Ok(ArgValue::Str(v.to_string()))
    }
    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<ArgValue, E> {
        Ok(ArgValue::Str(v))
    }
}

impl<'de> Deserialize<'de> for Constraint {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        match serde_json::Value::deserialize(d)? {
            serde_json::Value::Object(rule) => {
                serde_json::from_value(serde_json::Value::Object(rule))
                    .map(Constraint::Rule)
                    .map_err(|e| D::Error::custom(format!("in a constraint object: {e}")))
            }
            serde_json::Value::Array(_) => Err(D::Error::custom(
                "a constraint is a value (string, integer, boolean, null) or an object with \
                 `one_of`, `max`, `min` or `prefix`, not an array: write {\"one_of\": [..]}",
            )),
            value => serde_json::from_value(value)
                .map(Constraint::Exact)
                .map_err(D::Error::custom),
        }
    }
}

#[cfg(test)]
mod messages {
    use crate::grant::*;

    fn error(json: &str) -> String {
        match parse_grants(json) {
            Err(e) => e.to_string(),
            Ok(g) => panic!("accepted {g:?}"),
        }
    }

    #[test]
    fn wrong_grants_name_the_field_and_what_is_allowed() {
        let unknown = error(r#"{"type":"writ:root"}"#);
        assert!(unknown.contains("`writ:root`"), "{unknown}");
        assert!(unknown.contains("`writ:llm`"), "{unknown}");
        let tool = |args: &str| {
            error(&format!(
                r#"{{"type":"writ:tool","upstream":"u","tool":"t","arguments":{{"a":{args}}}}}"#
            ))
        };
        for (args, says) in [
            (r#"{"oneof":[1]}"#, "`one_of`"),
            ("[1,2]", "one_of"),
            ("1.5", "an argument value"),
            (r#"{"one_of":[1.5]}"#, "an argument value"),
        ] {
            let message = tool(args);
            assert!(message.contains(says), "{args}: {message}");
            assert!(!message.contains("untagged"), "{args}: {message}");
        }
    }

    #[test]
    fn a_json_error_says_so_once() {
        let message = error("not json");
        assert!(message.starts_with("not valid JSON: "), "{message}");
        assert_eq!(message.matches("JSON").count(), 1, "{message}");
    }

    #[test]
    fn constraints_still_read_both_shapes() {
        let g = parse_grants(
            r#"{"type":"writ:tool","upstream":"u","tool":"t","arguments":{"a":"x","b":{"max":3},"c":null,"d":true,"e":-4}}"#,
        );
        let Ok(grants) = g else {
            panic!("refused: {g:?}");
        };
        let Grant::Tool(t) = &grants[0] else {
            panic!("not a tool grant");
        };
        assert_eq!(
            t.arguments["a"],
            Constraint::Exact(ArgValue::Str("x".into()))
        );
        assert_eq!(t.arguments["c"], Constraint::Exact(ArgValue::Null));
        assert_eq!(t.arguments["d"], Constraint::Exact(ArgValue::Bool(true)));
        assert_eq!(t.arguments["e"], Constraint::Exact(ArgValue::Int(-4)));
        assert!(matches!(&t.arguments["b"], Constraint::Rule(r) if r.max == Some(3)));
    }
}
