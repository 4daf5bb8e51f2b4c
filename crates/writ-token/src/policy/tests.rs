//! Tests of operator policies: what they allow and deny, and what they refuse to hold.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::*;
use crate::ArgValue;

/// 2026-12-06T00:00:00Z.
fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_796_515_200)
}

fn chat(upstream: &str, model: &str) -> RequestFacts {
    let mut f = RequestFacts::new(Api::Llm, "chat", "POST", "/v1/chat/completions");
    f.upstream = Some(upstream.to_string());
    f.model = Some(model.to_string());
    f
}

fn tool_call(tool: &str, args: &[(&str, ArgValue)]) -> RequestFacts {
    let mut f = RequestFacts::new(Api::Tool, "tool_call", "POST", "/mcp/travel");
    f.upstream = Some("travel".to_string());
    f.tool = Some(tool.to_string());
    f.args = args
        .iter()
        .map(|(n, v)| ((*n).to_string(), v.clone()))
        .collect();
    f
}

fn policy(sources: &[(&str, &str)]) -> OperatorPolicy {
    OperatorPolicy::compile(sources).expect("policy compiles")
}

fn refused(name: &str, text: &str) -> PolicyError {
    OperatorPolicy::compile(&[(name, text)]).expect_err("policy is refused")
}

#[test]
fn denies_by_model_and_names_the_policy_and_its_check() {
    let p = policy(&[("no-gpt4", "reject if model($m), $m.starts_with(\"gpt-4\");")]);
    assert_eq!(
        p.check(&chat("openai", "gpt-4o-mini"), now()),
        Err(PolicyDenial::FailedCheck {
            policy: "no-gpt4".into(),
            line: 1,
            check: "reject if model($m), $m.starts_with(\"gpt-4\")".into(),
        })
    );
    assert_eq!(p.check(&chat("openai", "o3-mini"), now()), Ok(()));
    let denial = p
        .check(&chat("openai", "gpt-4"), now())
        .expect_err("denied");
    assert_eq!(denial.policy(), Some("no-gpt4"));
    assert_eq!(
        denial.to_string(),
        "denied by tenant policy `no-gpt4`: reject if model($m), $m.starts_with(\"gpt-4\")"
    );
}

#[test]
fn allows_and_denies_by_upstream() {
    let p = policy(&[(
        "eu-only",
        "check if upstream($u), [\"mistral\", \"aleph\"].contains($u);",
    )]);
    assert_eq!(p.check(&chat("mistral", "large"), now()), Ok(()));
    assert!(matches!(
        p.check(&chat("openai", "gpt-4o"), now()),
        Err(PolicyDenial::FailedCheck { policy, .. }) if policy == "eu-only"
    ));
}

#[test]
fn allows_and_denies_by_tool_and_arguments() {
    let p = policy(&[(
        "travel",
        "reject if tool(\"cancel_booking\");\n\
         check all arg(\"seats\", $n), $n <= 4;",
    )]);
    assert_eq!(
        p.check(
            &tool_call("book_flight", &[("seats", ArgValue::Int(2))]),
            now()
        ),
        Ok(())
    );
    // `check all` needs at least one match, like every check.
    assert!(p.check(&tool_call("book_flight", &[]), now()).is_err());
    let too_many = p.check(
        &tool_call("book_flight", &[("seats", ArgValue::Int(9))]),
        now(),
    );
    assert!(
        matches!(&too_many, Err(PolicyDenial::FailedCheck { line: 2, check, .. }) if check == "check all arg(\"seats\", $n), $n <= 4"),
        "{too_many:?}"
    );
    assert!(matches!(
        p.check(&tool_call("cancel_booking", &[]), now()),
        Err(PolicyDenial::FailedCheck { line: 1, .. })
    ));
}

#[test]
fn time_facts_are_stated_to_the_second() {
    let p = policy(&[("sunset", "check if time($t), $t < 2030-01-01T00:00:00Z;")]);
    let facts = chat("openai", "gpt-4o");
    assert_eq!(p.check(&facts, now()), Ok(()));
    // The same facts again (answered from the memo), then after the date: denied.
    assert_eq!(p.check(&facts, now()), Ok(()));
    let later = UNIX_EPOCH + Duration::from_secs(1_893_456_000); // 2030-01-01T00:00:00Z
    assert!(matches!(
        p.check(&facts, later),
        Err(PolicyDenial::FailedCheck { policy, .. }) if policy == "sunset"
    ));
}

#[test]
fn the_memo_answers_only_the_same_facts() {
    let p = policy(&[("no-gpt4", "reject if model(\"gpt-4\");")]);
    assert_eq!(p.check(&chat("openai", "gpt-3.5"), now()), Ok(()));
    assert!(p.check(&chat("openai", "gpt-4"), now()).is_err());
    assert_eq!(p.check(&chat("openai", "gpt-3.5"), now()), Ok(()));
}

#[test]
fn the_first_failing_policy_in_order_is_named_with_its_line() {
    let p = policy(&[
        ("a-models", "check if model($m);"),
        (
            "b-upstreams",
            "// only the EU\n\ncheck if upstream($u),\n    $u == \"mistral\";",
        ),
    ]);
    assert_eq!(
        p.check(&chat("openai", "gpt-4o"), now()),
        Err(PolicyDenial::FailedCheck {
            policy: "b-upstreams".into(),
            line: 3,
            check: "check if upstream($u), $u == \"mistral\"".into(),
        })
    );
    let no_model = RequestFacts::new(Api::Http, "http", "GET", "/x");
    assert!(matches!(
        p.check(&no_model, now()),
        Err(PolicyDenial::FailedCheck { policy, .. }) if policy == "a-models"
    ));
    assert_eq!(p.names(), ["a-models", "b-upstreams"]);
}

#[test]
fn no_policies_allow_without_work() {
    let p = OperatorPolicy::compile::<&str, &str>(&[]).expect("no policies compile");
    assert!(p.is_empty());
    assert_eq!(p.check(&chat("openai", "gpt-4"), now()), Ok(()));
}

#[test]
fn anything_but_checks_is_refused_with_its_line() {
    use ForbiddenConstruct as F;
    for (text, line, construct) in [
        ("check if model($m);\nmodel(\"gpt-4\");", 2, F::Fact),
        ("upstream(\"openai\");", 1, F::Fact),
        ("check if ok(1);\n\nok($x) <- model($x);", 3, F::Rule),
        ("allow if true;", 1, F::AllowOrDeny),
        (
            "check if model($m);\ndeny if model(\"gpt-4\");",
            2,
            F::AllowOrDeny,
        ),
        ("trusting authority;\ncheck if model($m);", 1, F::Trusting),
        ("check if model($m) trusting previous;", 1, F::Trusting),
        (
            "check if model($m) trusting ed25519/acdd6d5b53bfee478bf689f8e012fe7988bf755e3d7c5152947abc149bc20189;",
            1,
            F::Trusting,
        ),
        ("check if model({m});", 1, F::Parameter),
        ("check if model($m), $m == {m};", 1, F::Parameter),
        (
            "check if model($m), $m.extern::allowed();",
            1,
            F::ExternalFunction,
        ),
    ] {
        let error = refused("p", text);
        assert_eq!(
            error,
            PolicyError::Forbidden {
                policy: "p".into(),
                line,
                construct
            },
            "{text}"
        );
        let words = error.to_string();
        assert!(
            words.starts_with(&format!("policy `p`: line {line}: "))
                && words.ends_with(
                    "only `check if`, `check all`, `reject if` and `requires_approval(\"why\") <- …` are allowed"
                ),
            "{words}"
        );
    }
}

#[test]
fn a_rule_bomb_is_refused_before_it_can_run() {
    let bomb = "check if p($a, $b, $c, $d);\n\
                p($a, $b, $c, $d) <- arg($a, $w), arg($b, $x), arg($c, $y), arg($d, $z);";
    assert!(matches!(
        refused("bomb", bomb),
        PolicyError::Forbidden {
            line: 2,
            construct: ForbiddenConstruct::Rule,
            ..
        }
    ));
}

#[test]
fn a_check_bomb_is_a_denial_not_a_stall() {
    // Eight joins over the request's arguments: harmless for a call with few arguments,
    // billions of matches for one with hundreds. Denied before it runs, naming the policy.
    let bomb = "check if arg($a, $x1), arg($b, $x2), arg($c, $x3), arg($d, $x4), \
                arg($e, $x5), arg($f, $x6), arg($g, $x7), arg($h, $x8), $x1 == $x8;";
    let p = policy(&[("fine", "check if api($x);"), ("bomb", bomb)]);
    assert!(matches!(
        p.check(&tool_call("t", &[("a", ArgValue::Int(1))]), now()),
        Ok(())
    ));
    let args: Vec<(String, ArgValue)> = (0..400)
        .map(|i| (format!("k{i}"), ArgValue::Int(i)))
        .collect();
    let mut wide = tool_call("t", &[]);
    wide.args = args;
    assert!(
        p.evaluation_work(&tool_call("t", &[("a", ArgValue::Int(1))]))
            .expect("cheap for one argument")
            < 20_000
    );
    assert_eq!(
        p.evaluation_work(&wide),
        Err(PolicyDenial::TooCostly {
            policy: "bomb".into()
        })
    );
    let denial = p.check(&wide, now()).expect_err("too costly is a denial");
    assert_eq!(
        denial,
        PolicyDenial::TooCostly {
            policy: "bomb".into()
        }
    );
    assert!(denial.to_string().contains("fail closed"), "{denial}");
}

#[test]
fn hitting_a_run_limit_is_a_denial() {
    let p = policy(&[("p", "check if model($m);")]);
    for limit in [
        biscuit_auth::error::RunLimit::Timeout,
        biscuit_auth::error::RunLimit::TooManyFacts,
        biscuit_auth::error::RunLimit::TooManyIterations,
    ] {
        let denial = p.denial(Token::RunLimit(limit));
        assert_eq!(denial, PolicyDenial::RunLimit);
        assert!(
            denial.to_string().contains("exceeded its limits"),
            "{denial}"
        );
    }
}

#[test]
fn oversized_sources_and_too_many_checks_are_refused() {
    let big = format!("check if model($m);\n//{}", "x".repeat(MAX_POLICY_BYTES));
    assert!(matches!(
        refused("big", &big),
        PolicyError::TooLarge { policy, max: MAX_POLICY_BYTES, .. } if policy == "big"
    ));
    let checks = |n: usize| {
        (0..n)
            .map(|i| format!("reject if model(\"m{i}\");\n"))
            .collect::<String>()
    };
    let (forty, twenty_five) = (checks(40), checks(25));
    let error = OperatorPolicy::compile(&[("a", forty.as_str()), ("b", twenty_five.as_str())])
        .expect_err("65 checks are refused");
    assert_eq!(
        error,
        PolicyError::TooManyChecks {
            count: 65,
            max: MAX_POLICY_CHECKS
        }
    );
    let (forty, twenty_four) = (checks(40), checks(24));
    assert!(OperatorPolicy::compile(&[("a", forty.as_str()), ("b", twenty_four.as_str())]).is_ok());
    let joins = (0..=crate::MAX_PREDICATES_PER_QUERY)
        .map(|i| format!("path_segment({i}, $s{i})"))
        .collect::<Vec<_>>()
        .join(", ");
    assert!(matches!(
        refused("wide", &format!("check if {joins};")),
        PolicyError::TooCostly {
            cause: DatalogError::TooManyPredicates { .. },
            ..
        }
    ));
}

#[test]
fn bad_names_syntax_and_empty_sources_are_refused_in_words() {
    for name in [
        "",
        "has space",
        "semi;colon",
        &"n".repeat(MAX_POLICY_NAME_BYTES + 1),
    ] {
        assert!(
            matches!(
                refused(name, "check if model($m);"),
                PolicyError::InvalidName { .. }
            ),
            "{name:?}"
        );
    }
    assert_eq!(
        OperatorPolicy::compile(&[("a", "check if model($m);"), ("a", "check if tool($t);")])
            .expect_err("duplicate"),
        PolicyError::DuplicateName { policy: "a".into() }
    );
    let syntax = refused("typo", "check if model($m);\ncheck iff tool($t);");
    assert!(
        matches!(&syntax, PolicyError::Syntax { policy, line: 2, .. } if policy == "typo"),
        "{syntax:?}"
    );
    assert!(
        syntax
            .to_string()
            .starts_with("policy `typo`: line 2: not valid Datalog")
    );
    assert_eq!(
        refused("blank", "// nothing yet\n"),
        PolicyError::NoCheck {
            policy: "blank".into()
        }
    );
    assert!(matches!(
        refused("re", "check if path($p), $p.matches($p);"),
        PolicyError::TooCostly {
            cause: DatalogError::RegexNotLiteral { .. },
            ..
        }
    ));
}

#[test]
fn validate_policy_answers_as_compile_does() {
    assert_eq!(validate_policy("ok", "check if model($m);"), Ok(()));
    assert!(matches!(
        validate_policy("no", "allow if true;"),
        Err(PolicyError::Forbidden {
            construct: ForbiddenConstruct::AllowOrDeny,
            ..
        })
    ));
}

#[test]
fn a_policy_sees_no_token_facts() {
    // Nothing but the request is in scope: a check on a writ's claims always fails.
    let p = policy(&[("claims", "check if tenant($t);")]);
    assert!(p.check(&chat("openai", "gpt-4o"), now()).is_err());
    let p = policy(&[("api", "check if api(\"llm\"), operation(\"chat\");")]);
    assert_eq!(p.check(&chat("openai", "gpt-4o"), now()), Ok(()));
}

#[test]
fn an_approval_rule_names_the_requests_it_holds() {
    let p = policy(&[(
        "payments",
        "check if tool($t);\n\
         requires_approval(\"payments over 100\") <- tool(\"pay\"), arg(\"amount\", $a), $a > 100;",
    )]);
    assert!(p.asks_approval());
    let now = now();
    let small = tool_call("pay", &[("amount", ArgValue::Int(100))]);
    assert_eq!(p.approval_required(&small, now).unwrap(), None);
    let big = tool_call("pay", &[("amount", ArgValue::Int(250))]);
    let reason = p.approval_required(&big, now).unwrap().unwrap();
    assert_eq!(reason.reason, "payments over 100");
    assert_eq!((reason.policy.as_str(), reason.line), ("payments", 2));
    // The rule holds, it does not refuse: the policy's checks still pass.
    assert_eq!(p.check(&big, now), Ok(()));
    let other = tool_call("refund", &[("amount", ArgValue::Int(250))]);
    assert_eq!(p.approval_required(&other, now).unwrap(), None);
}

#[test]
fn only_requires_approval_with_one_quoted_reason_is_a_rule_policies_may_state() {
    for text in [
        "requires_approval($t) <- tool($t);",
        "requires_approval(\"a\", \"b\") <- tool($t);",
        "requires_approval(1) <- tool($t);",
        "approve(\"x\") <- tool($t);",
        "requires_approval(\"  \") <- tool($t);",
        "requires_approval(\"a\\nb\") <- tool($t);",
    ] {
        let error = refused("p", text);
        assert!(
            matches!(
                error,
                PolicyError::Forbidden {
                    construct: ForbiddenConstruct::Rule,
                    ..
                }
            ),
            "{text}: {error:?}"
        );
    }
    let long = format!("requires_approval(\"{}\") <- tool($t);", "x".repeat(201));
    assert!(matches!(refused("p", &long), PolicyError::Forbidden { .. }));
    // A rule alone is a policy.
    let p = policy(&[("p", "requires_approval(\"any tool\") <- tool($t);")]);
    assert!(!p.is_empty());
}
