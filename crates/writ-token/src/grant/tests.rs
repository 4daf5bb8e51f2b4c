//! Tests of grant parsing and validation.

use super::*;

#[test]
fn parses_single_object_and_array() {
    let one = parse_grants(r#"{"type":"writ:llm","upstream":"demo"}"#).unwrap();
    let many = parse_grants(r#"[{"type":"writ:llm","upstream":"demo"}]"#).unwrap();
    assert_eq!(one, many);
}

#[test]
fn parses_every_kind() {
    let grants = parse_grants(
        r#"[{"type":"writ:tool","upstream":"travel","tool":"book_flight",
             "arguments":{"flight":"LH123","seats":{"max":2},"class":{"one_of":["economy","business"]},
                          "passenger.name":{"prefix":"A"},"insured":true}},
            {"type":"writ:http","upstream":"crm","methods":["GET"],"path":"/v1/bookings/{id}",
             "params":{"id":{"prefix":"bk_"}}},
            {"type":"writ:admin","tenant":"acme"},
            {"type":"writ:budget","usd_micros":5000,"tokens":1000},
            {"type":"writ:datalog","code":"check if time($t), $t < 2030-01-01T00:00:00Z;"}]"#,
    )
    .unwrap();
    assert_eq!(grants.len(), 5);
    let back = serde_json::to_string(&grants).unwrap();
    assert_eq!(parse_grants(&back).unwrap(), grants);
}

#[test]
fn grant_types_are_the_serialized_types() {
    let mut grants = parse_grants(
        r#"[{"type":"writ:llm","upstream":"demo"},
            {"type":"writ:tool","upstream":"travel","tool":"book_flight"},
            {"type":"writ:prompt","upstream":"travel","prompt":"trip"},
            {"type":"writ:resource","upstream":"travel","uri":"flights://LH123"},
            {"type":"writ:http","upstream":"crm","methods":["GET"],"path":"/v1"},
            {"type":"writ:admin","tenant":"acme"},
            {"type":"writ:budget","tokens":1000},
            {"type":"writ:datalog","code":"check if time($t), $t < 2030-01-01T00:00:00Z;"}]"#,
    )
    .unwrap();
    for grant in &grants {
        let v = serde_json::to_value(grant).unwrap();
        assert_eq!(v["type"], grant.type_name());
    }
    grants.dedup_by_key(|g| g.type_name());
    let named: Vec<&str> = grants.iter().map(Grant::type_name).collect();
    assert_eq!(named, GRANT_TYPES);
}

#[test]
fn rejects_unknown_type_and_fields() {
    for bad in [
        r#"{"type":"writ:root","upstream":"demo"}"#,
        r#"{"type":"writ:llm","upstream":"demo","admin":true}"#,
        r#"{"type":"writ:llm","upstream":"demo","models":"gpt-4o"}"#,
        r#"{"type":"writ:tool","upstream":"t","tool":"x","arguments":{"a":{"between":[1,2]}}}"#,
        r#"{"type":"writ:tool","upstream":"t","tool":"x","arguments":{"a":1.5}}"#,
    ] {
        assert!(
            matches!(parse_grants(bad), Err(GrantError::Shape(_))),
            "{bad}"
        );
    }
}

#[test]
fn rejects_a_key_given_twice_rather_than_keeping_the_last() {
    let path = |json: &str| match parse_grants(json) {
        Err(GrantError::DuplicateKey { path }) => path.to_string(),
        other => panic!("{json}: {other:?}"),
    };
    // Last-wins would grant gpt-4o while a first-wins reader approves gpt-4o-mini.
    assert_eq!(
        path(
            r#"[{"type":"writ:llm","upstream":"demo","models":["gpt-4o-mini"],"models":["gpt-4o"]}]"#
        ),
        "[0].models"
    );
    assert_eq!(
        path(r#"{"type":"writ:tool","upstream":"t","tool":"x","arguments":{"a":1,"\u0061":2}}"#),
        "arguments.a"
    );
    assert_eq!(
        path(r#"{"type":"writ:llm","upstream":"demo","type":"writ:admin"}"#),
        "type"
    );
}

#[test]
fn rejects_empty_and_hostile_values() {
    assert_eq!(parse_grants("[]"), Err(GrantError::Empty));
    let field = |json: &str| match parse_grants(json) {
        Err(GrantError::InvalidField { field, .. }) => field,
        other => panic!("{json}: {other:?}"),
    };
    assert_eq!(field(r#"{"type":"writ:llm","upstream":""}"#), "upstream");
    assert_eq!(
        field(r#"{"type":"writ:llm","upstream":"d","models":[]}"#),
        "models"
    );
    let long = "x".repeat(300);
    assert_eq!(
        field(&format!(r#"{{"type":"writ:llm","upstream":"{long}"}}"#)),
        "upstream"
    );
    assert_eq!(
        field(r#"{"type":"writ:llm","upstream":"a\u0000b"}"#),
        "upstream"
    );
    assert_eq!(
        field(r#"{"type":"writ:tool","upstream":"t","tool":"x","arguments":{"a":{}}}"#),
        "arguments"
    );
    assert_eq!(
        field(r#"{"type":"writ:http","upstream":"u","path":"no-slash"}"#),
        "path"
    );
    assert_eq!(
        field(r#"{"type":"writ:http","upstream":"u","path":"/a/{id}x"}"#),
        "path"
    );
    assert_eq!(
        field(r#"{"type":"writ:http","upstream":"u","path":"/a/{id}/{id}"}"#),
        "path"
    );
    assert_eq!(
        field(r#"{"type":"writ:http","upstream":"u","path":"/a","params":{"id":"1"}}"#),
        "params"
    );
    assert_eq!(
        field(r#"{"type":"writ:http","upstream":"u","path":"/a","methods":["get"]}"#),
        "methods"
    );
    assert_eq!(
        field(
            r#"[{"type":"writ:llm","upstream":"u"},{"type":"writ:datalog","code":"right(\"x\");"}]"#
        ),
        "code"
    );
    assert_eq!(
        field(r#"[{"type":"writ:llm","upstream":"u"},{"type":"writ:datalog","code":"check if"}]"#),
        "code"
    );
}
