use std::time::{Duration, UNIX_EPOCH};

use writ_audit::Kind;

use super::capped::OTHER;
use super::*;

fn answered(agent: &str, model: &str) -> AuditRecord {
    let mut r = crate::audit::record_at(Kind::RequestAllowed, UNIX_EPOCH);
    r.tenant = Some("default".into());
    r.agent = Some(agent.into());
    r.writ = Some("pseudonym-of-the-writ".into());
    r.upstream = Some("openai".into());
    r.model = Some(model.into());
    r.operation = Some("chat".into());
    r.status = Some(200);
    r.usage = Some(writ_audit::record::Usage {
        input_tokens: 12,
        output_tokens: 30,
        cached_tokens: None,
    });
    r.cost_usd_micros = Some(1_500);
    r
}

fn render(m: &Metrics) -> String {
    m.render(Readings::default()).unwrap()
}

fn config(agent_labels: bool) -> MetricsConfig {
    MetricsConfig {
        agent_labels,
        require_admin: false,
    }
}

#[test]
fn a_label_keeps_at_most_its_cap_of_values_and_the_rest_are_other() {
    let values = CappedValues::new(3);
    for v in ["a", "b", "c"] {
        assert_eq!(&*values.get(v), v);
    }
    assert_eq!(&*values.get("d"), OTHER);
    assert_eq!(&*values.get("e"), OTHER);
    assert_eq!(&*values.get("a"), "a", "a value seen keeps its label");
    assert_eq!(values.len(), 3);
    // Absent, empty, over-long or control-character values are never kept.
    let values = CappedValues::new(10);
    assert_eq!(&*values.get_opt(None), NONE);
    assert_eq!(&*values.get_opt(Some("")), NONE);
    assert_eq!(&*values.get(&"m".repeat(129)), OTHER);
    assert_eq!(&*values.get(&"m".repeat(128)), "m".repeat(128));
    assert_eq!(&*values.get("gpt\n4o"), OTHER);
    assert_eq!(&*values.get("tab\there"), OTHER);
    assert_eq!(values.len(), 1);
}

#[test]
fn past_the_cap_every_request_still_counts_under_other() {
    let m = Metrics::new(config(false));
    for i in 0..150 {
        m.request(&answered("demo", &format!("model-{i}")), None, None);
    }
    let text = render(&m);
    let series: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("writ_requests_total{"))
        .collect();
    assert_eq!(series.len(), MAX_LABEL_VALUES + 1, "{text}");
    assert!(
        text.contains(
            "writ_requests_total{upstream=\"openai\",model=\"_other\",operation=\"chat\",status=\"200\"} 50\n"
        ),
        "{text}"
    );
    let total: u64 = series
        .iter()
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(total, 150);
}

#[test]
fn a_request_counts_its_status_tokens_cost_and_times() {
    let m = Metrics::new(config(false));
    let r = answered("alice", "gpt-4o");
    m.request(
        &r,
        Some(Duration::from_micros(300)),
        Some(Duration::from_millis(40)),
    );
    m.request(&r, Some(Duration::from_micros(300)), None);
    let text = render(&m);
    for line in [
        "writ_requests_total{upstream=\"openai\",model=\"gpt-4o\",operation=\"chat\",status=\"200\"} 2\n",
        "writ_tokens_total{tenant=\"default\",agent=\"-\",model=\"gpt-4o\",direction=\"input\"} 24\n",
        "writ_tokens_total{tenant=\"default\",agent=\"-\",model=\"gpt-4o\",direction=\"output\"} 60\n",
        "writ_cost_usd_total{tenant=\"default\",agent=\"-\",model=\"gpt-4o\"} 0.003\n",
        "writ_gateway_overhead_seconds_count{upstream=\"openai\"} 2\n",
        "writ_upstream_duration_seconds_count{upstream=\"openai\"} 1\n",
        "writ_upstream_duration_seconds_bucket{upstream=\"openai\",le=\"0.05\"} 1\n",
        "# TYPE writ_requests_total counter\n",
        "# TYPE writ_gateway_overhead_seconds histogram\n",
    ] {
        assert!(text.contains(line), "{line} in:\n{text}");
    }
    assert!(!text.contains("alice"), "agents are not named by default");
    assert!(!text.contains("pseudonym-of-the-writ"));
}

#[test]
fn values_seen_before_count_in_the_series_made_for_them_then() {
    let m = Metrics::new(config(false));
    for agent in ["alice", "bob", "carol"] {
        m.request(&answered(agent, "gpt-4o"), None, None);
    }
    // One set of request values and, agents unnamed, one of usage values.
    assert_eq!((m.by_request.len(), m.by_usage.len()), (1, 1));
    let text = render(&m);
    assert!(
        text.contains(
            "writ_tokens_total{tenant=\"default\",agent=\"-\",model=\"gpt-4o\",direction=\"input\"} 36\n"
        ),
        "{text}"
    );
    // A direction with no tokens, and no cost, show no series until counted in.
    let m = Metrics::new(config(true));
    let mut input_only = answered("alice", "gpt-4o");
    input_only.usage = Some(writ_audit::record::Usage {
        input_tokens: 5,
        output_tokens: 0,
        cached_tokens: None,
    });
    input_only.cost_usd_micros = None;
    m.request(&input_only, None, None);
    let text = render(&m);
    assert!(text.contains("direction=\"input\"} 5\n"), "{text}");
    assert!(!text.contains("direction=\"output\""), "{text}");
    assert!(!text.contains("writ_cost_usd_total{"), "{text}");
    m.request(&answered("alice", "gpt-4o"), None, None);
    let text = render(&m);
    for line in [
        "agent=\"alice\",model=\"gpt-4o\",direction=\"input\"} 17\n",
        "agent=\"alice\",model=\"gpt-4o\",direction=\"output\"} 30\n",
        "writ_cost_usd_total{tenant=\"default\",agent=\"alice\",model=\"gpt-4o\"} 0.0015\n",
    ] {
        assert!(text.contains(line), "{line} in:\n{text}");
    }
    assert_eq!(m.by_usage.len(), 1);
}

#[test]
fn agents_are_named_only_when_asked() {
    let m = Metrics::new(config(true));
    m.request(&answered("alice", "gpt-4o"), None, None);
    let text = render(&m);
    assert!(
        text.contains(
            "writ_tokens_total{tenant=\"default\",agent=\"alice\",model=\"gpt-4o\",direction=\"input\"} 12\n"
        ),
        "{text}"
    );
}

#[test]
fn a_hostile_model_name_is_escaped_and_cannot_break_a_line() {
    let m = Metrics::new(config(false));
    m.request(&answered("demo", "a\"b\\c} 1"), None, None);
    m.request(&answered("demo", "x\ny 9"), None, None);
    let text = render(&m);
    assert!(
        text.contains(
            "writ_requests_total{upstream=\"openai\",model=\"a\\\"b\\\\c} 1\",operation=\"chat\",status=\"200\"} 1\n"
        ),
        "{text}"
    );
    assert!(text.contains("model=\"_other\""), "{text}");
    assert!(!text.contains("x\ny"));
}

#[test]
fn a_refusal_counts_its_status_and_no_usage() {
    let m = Metrics::new(config(false));
    let mut r = crate::audit::record_at(Kind::RequestDenied, UNIX_EPOCH);
    r.operation = Some("chat".into());
    r.status = Some(401);
    m.request(&r, Some(Duration::from_micros(80)), None);
    m.mint("issued");
    m.mint("invalid_client");
    m.mint("invalid_client");
    let text = render(&m);
    for line in [
        "writ_requests_total{upstream=\"-\",model=\"-\",operation=\"chat\",status=\"401\"} 1\n",
        "writ_gateway_overhead_seconds_count{upstream=\"-\"} 1\n",
        "writ_mints_total{outcome=\"issued\"} 1\n",
        "writ_mints_total{outcome=\"invalid_client\"} 2\n",
    ] {
        assert!(text.contains(line), "{line} in:\n{text}");
    }
    assert!(!text.contains("writ_tokens_total{"), "{text}");
    assert!(
        !text.contains("writ_upstream_duration_seconds_count"),
        "{text}"
    );
}

#[test]
fn readings_render_with_their_kept_names() {
    let m = Metrics::new(config(false));
    let decisions = LimitDecisions::default();
    decisions.count(writ_limits::Dimension::Requests, LimitOutcome::Allowed);
    decisions.count(writ_limits::Dimension::Requests, LimitOutcome::Refused);
    let stats = AuditStats::default();
    stats.received(5);
    stats.written(3);
    stats.failed();
    let text = m
        .render(Readings {
            detections: vec![("prompt_secret", "blocked", 2)],
            webhooks: Some([("delivered", 1), ("failed", 0), ("dropped", 0)]),
            limit_decisions: decisions.totals(),
            audit_queue: stats.queued(),
            audit_sink_failures: stats.failures(),
            writ_cache: 7,
        })
        .unwrap();
    for line in [
        "writ_detections_total{detector=\"prompt_secret\",action=\"blocked\"} 2\n",
        "writ_webhook_events_total{outcome=\"delivered\"} 1\n",
        "writ_limit_decisions_total{dimension=\"requests\",outcome=\"allowed\"} 1\n",
        "writ_limit_decisions_total{dimension=\"requests\",outcome=\"refused\"} 1\n",
        "writ_limit_decisions_total{dimension=\"cost\",outcome=\"unavailable\"} 0\n",
        "writ_audit_queue_depth 2\n",
        "writ_audit_sink_failures_total 1\n",
        "writ_writ_cache_entries 7\n",
        "# TYPE writ_detections_total counter\n",
        "# TYPE writ_audit_queue_depth gauge\n",
    ] {
        assert!(text.contains(line), "{line} in:\n{text}");
    }
}

#[test]
fn long_model_names_count_as_other_and_are_not_kept() {
    let m = Metrics::new(config(false));
    for i in 0..50 {
        let name = format!("{i}{}", "m".repeat(10_000));
        m.request(&answered("demo", &name), None, None);
    }
    let text = render(&m);
    assert!(
        text.contains(
            "writ_requests_total{upstream=\"openai\",model=\"_other\",operation=\"chat\",status=\"200\"} 50\n"
        ),
        "{text}"
    );
    assert!(!text.contains("mmmm"));
    // Neither memo holds a copy of any of them.
    assert_eq!((m.by_request.len(), m.by_usage.len()), (0, 0));
}
