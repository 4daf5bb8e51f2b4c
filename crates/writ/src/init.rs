//! `writ init`: write a commented `writ.toml` that shows every option that exists.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;

/// Options of `writ init`.
#[derive(Debug, clap::Args)]
pub struct InitArgs {
    /// Where to write the file.
    #[arg(default_value = "writ.toml")]
    path: PathBuf,
    /// Overwrite an existing file.
    #[arg(long)]
    force: bool,
    /// Retired: the demo's mock upstream is started by `writ serve --demo`, not configured.
    #[arg(long, hide = true)]
    demo: bool,
}

/// The file `writ init` writes: every option, commented, with its default. Nothing is
/// active but the server and token settings; upstreams are examples to uncomment.
pub const TEMPLATE: &str = r#"# writ.toml: configuration of the writ gateway.
# Run with: writ serve --config writ.toml   (or put it in ./writ.toml, or set WRIT_CONFIG)
# Check it with: writ config check --config writ.toml
# Unknown keys are errors. Secrets may be written as ${env:NAME}: `writ serve` reads them
# from its environment at start-up; no other command needs them.

[server]
# Address to listen on. A non-loopback address without TLS is warned about.
listen = "127.0.0.1:8787"
# Where the SQLite database and the key files live (created by `writ serve`, mode 0700).
data_dir = "writ-data"
# Largest request body accepted, in bytes; larger bodies get 413 before they are read.
max_body_bytes = 10485760
# Serving threads, one runtime each (default: one per CPU core; 0 = one shared runtime).
# workers = 4
# On SIGTERM, stop accepting and wait this long for requests and streams in flight, then
# write the audit log's last records and sign a final checkpoint (a second SIGTERM: now).
# drain_timeout = "30s"

# The URL clients reach this gateway at; client assertions must name it in `aud`.
# public_url = "https://writ.example.com"

# Serve HTTPS with this certificate chain and private key (PEM); plain HTTP without.
# tls_cert = "/etc/writ/tls/cert.pem"
# tls_key = "/etc/writ/tls/key.pem"
# The CA (PEM) that signed tls_cert: the writ CLI trusts it when it reaches this gateway
# (else --ca-file, else the public web roots). For a self-signed certificate, the
# certificate itself.
# tls_ca = "/etc/writ/tls/ca.pem"
# Listening beyond loopback without TLS is warned about at start, and the admin API is
# then refused (403) unless this is true: admin writs would cross the network in clear.
# allow_plaintext_admin = false
# Web origins, besides this gateway's own, whose pages may call /mcp/{upstream}; a request
# there with any other Origin header is refused (403). Clients sending none are unaffected.
# mcp_allowed_origins = ["https://app.example.com"]
# Upstreams created through the admin API may reach private, loopback or metadata
# addresses (their allow_private_network) only when this is true.
# allow_private_upstreams = false

# The admin API, /metrics and the console on a listener of their own, so the address
# above can face agents alone: there they get 404, as for any unknown path. /healthz and
# /readyz answer on both. Without this section everything is served on server.listen.
# With tls_cert set, this listener serves HTTPS with the same certificate.
# [admin]
# listen = "127.0.0.1:9091"                  # must differ from server.listen
# The URL operators reach it at: the console's origin (passkeys, enrolment links) and the
# base of admin links in approval webhooks. Default: http(s)://<admin listen address>.
# public_url = "https://writ-admin.example.com"

[tokens]
# Tenant agents belong to when none is named.
tenant = "default"
# Longest lifetime of a writ. 30s is the default and the recommended ceiling.
max_ttl = "30s"

# Where tenants, agents, upstreams created through the admin API, their encrypted
# credentials, policies and limits live: SQLite in data_dir by default; PostgreSQL for
# several gateways sharing one state (migrated at start).
# [store]
# url = "postgres://writ@db.example.com/writ"
# The key wrapping every credential's data key: base64 of 32 bytes (openssl rand -base64 32).
# Default: the data directory's keys/master.key. Give every instance the same one.
# master_key = "${env:WRIT_MASTER_KEY}"
# Keys master_key replaced, still read until `writ secret rewrap` re-wraps everything.
# previous_master_keys = ["${env:WRIT_OLD_MASTER_KEY}"]
# How often an instance looks for changes made through another (it is also notified).
# poll_interval = "250ms"

# Tenants created at every start (the [tokens] tenant always is). More can be added
# through the admin API (`writ tenant add`).
# [tenants.acme]
# display_name = "Acme Corp."
# Policies of the tenant (Datalog, as `writ policy set` takes): checks that refuse, and
# rules that hold a request until a person approves it (`writ approve <id>`).
# [tenants.acme.policies]
# payments = 'requires_approval("payments over 100") <- tool("pay"), arg("amount", $a), $a > 100;'

# How `writ serve` writes its log (to stderr): "text", or "json" for one object per line.
# WRIT_LOG_FORMAT overrides it; WRIT_LOG picks what is logged (default "info").
# [log]
# format = "json"
# level = "info"               # error, warn, info, debug, trace or a filter (WRIT_LOG overrides it)
# requests = true              # one line per request at info (writs by pseudonym only)

# Prometheus metrics at GET /metrics (every series: docs/operations.md). Label values are
# capped at 100 per label (tenant, agent, upstream, model), the rest counted as "_other".
# [metrics]
# agent_labels = false         # name agents in token and cost series ("-" when off)
# require_admin = false        # only a writ:admin over every tenant reads it (401 without)
# OpenTelemetry traces over OTLP/HTTP (see docs/operations.md); off when absent. One server
# span per request under the client's `traceparent`, with GenAI attributes (never a writ,
# a prompt or a credential).
# [traces]
# endpoint = "http://127.0.0.1:4318/v1/traces"   # the collector's OTLP/HTTP traces URL
# sample_ratio = 1.0            # share of requests traced when the client's traceparent does not say
# service_name = "writ"
# timeout = "10s"               # one export at most
# max_queue = 2048              # spans waiting for export; more are dropped (counted)
# export_interval = "5s"

# How held requests wait for a person (see docs/approvals.md).
# [approvals]
# ttl = "5m"                    # never past the writ's own expiry
# poll_interval = "5s"
# max_pending_per_agent = 100   # one more is refused, 429
# max_pending_per_tenant = 1000
# A signed POST to each of these when an approval starts waiting (its summary and link,
# never a secret); signed and retried like detection webhooks.
# [[approvals.webhooks]]
# url = "https://hooks.example.com/writ-approvals"
# secret = "${env:APPROVAL_WEBHOOK_SECRET}"   # at least 16 bytes
# tenants = ["acme"]                          # leave out for every tenant
# timeout = "5s"
# max_attempts = 6
# backoff_base = "500ms"
# ca_file = "/etc/writ/hooks-ca.pem"
# allow_private_network = false

# Upstreams: one table per upstream, named as grants name them ("upstream": "openai").
# kind = "openai":    OpenAI or any server speaking its API with a Bearer key.
# kind = "anthropic": Anthropic's Messages API (x-api-key).
# kind = "gemini":    the Gemini Developer API (x-goog-api-key).
# kind = "azure":     Azure OpenAI (api-key); base_url is the resource endpoint.
# kind = "vertex":    Vertex AI; a service-account key is exchanged for access tokens.
# kind = "bedrock":   AWS Bedrock Runtime; every request is signed with SigV4.
# kind = "mcp":       an MCP tool server at base_url, or started by the gateway with
#                     command and spoken to over stdio (POST /mcp/<name> either way).
# kind = "http":      a plain HTTP API (/u/<name>/...).
# The offline demo needs none here: `writ serve --demo` adds a mock of OpenAI on a
# loopback port as upstream "demo" (to any config) and an agent "demo" that may use it.
# When several upstreams speak the same API, a writ whose grants name one of them is
# routed there; otherwise a client picks one with the x-writ-upstream header.
#
# [upstreams.openai]
# kind = "openai"
# base_url = "https://api.openai.com"      # default for kind = "openai"
# api_key = "${env:OPENAI_API_KEY}"        # injected as Authorization: Bearer
# organization = "org-..."                 # optional, sent as OpenAI-Organization
# project = "proj_..."                     # optional, sent as OpenAI-Project
# timeout = "120s"                         # longest wait for response headers (then 504)
# connect_timeout = "10s"                  # longest wait to connect (then 502)
# read_timeout = "60s"                     # longest wait between response chunks
# max_response_bytes = 67108864            # larger responses are cut off (502)
# allow_private_network = false            # allow loopback/private/metadata addresses
# allow_plaintext = false                  # allow an http:// base_url to another host
#                                          #   (the credential travels unencrypted)
#
# [upstreams.anthropic]
# kind = "anthropic"
# api_key = "${env:ANTHROPIC_API_KEY}"     # injected as x-api-key
#
# [upstreams.gemini]
# kind = "gemini"
# api_key = "${env:GEMINI_API_KEY}"        # injected as x-goog-api-key
#
# [upstreams.azure]
# kind = "azure"
# base_url = "https://my-resource.openai.azure.com"
# api_key = "${env:AZURE_OPENAI_API_KEY}"  # injected as api-key
# deployments = { "prod-4o" = "gpt-4o" }   # each deployment's model, for grants and prices
#
# [upstreams.vertex]
# kind = "vertex"
# location = "us-central1"                 # the base_url defaults from it
# service_account_file = "/etc/writ/sa.json"
# service_account_json = "${env:VERTEX_SA_JSON}"   # instead of the file
# project = "my-project"                   # default: the key's project_id
# token_uri = "https://oauth2.googleapis.com/token"   # default: the key's
#
# [upstreams.bedrock]
# kind = "bedrock"
# region = "us-east-1"                     # base_url defaults to bedrock-runtime.<region>
# aws_access_key_id = "${env:AWS_ACCESS_KEY_ID}"
# aws_secret_access_key = "${env:AWS_SECRET_ACCESS_KEY}"
# aws_session_token = "${env:AWS_SESSION_TOKEN}"   # optional, for temporary credentials
#
# [upstreams.tools]
# kind = "mcp"                             # or "http"
# base_url = "https://tools.example.com/mcp"
# api_key = "${env:TOOLS_TOKEN}"           # Authorization: Bearer by default,
# auth_header = "x-api-key"                #   or the key alone in this header,
# basic_user = "svc"                       #   or as the password of HTTP Basic,
# auth_query = "key"                       #   or as this query parameter (upstream only)
#
# [upstreams.files]                        # an MCP server the gateway starts (stdio)
# kind = "mcp"
# command = ["/usr/bin/python3", "-m", "files_server"]   # absolute program, no shell
# env = { HOME = "/tmp", FILES_TOKEN = "${env:FILES_TOKEN}" }   # its only environment
# cwd = "/"                                # its working directory
# (timeout: per answer; connect_timeout: start and handshake; max_response_bytes: per line)
# Limits: scope (tenant, agent, writ, upstream, model; one or a list) x dimension
# (requests, input_tokens, output_tokens, tokens, cost in USD micros, concurrency,
# compute in upstream ms) x window (per = second/minute/hour: a rate with optional burst;
# day/month: a UTC calendar budget; none for concurrency).
# [[limit]]
# scope = ["tenant", "agent"]
# dimension = "tokens"
# per = "minute"
# limit = 200000
# burst = 50000                           # rates only; default: limit
# match = { agent = "travel" }            # optional: only this agent
#
# [limiter]
# backend = "memory"                      # or "redis": exact across gateway instances
# redis_url = "${env:REDIS_URL}"
# on_backend_failure = "closed"           # or "local": per-instance limits meanwhile
# lease_ttl = "5m"                        # concurrency leases of a dead gateway lapse
# timeout = "2s"                          # per Redis command
# default_output_tokens = 1024            # reserved when a request states no cap

# Detection: what each detector does when it fires: "block" (the default), "monitor"
# (let it through, record it) or "off". Detectors: prompt_secret, response_secret,
# url_credential, weak_jwt, brute_force, raw_provider_key.
# [detection.modes]
# prompt_secret = "block"
# response_secret = "block"
#
# [detection.tenants.research]            # one tenant's overrides of the modes
# prompt_secret = "monitor"
#
# Brute force, counted in the limiter backend (shared across instances with Redis).
# [detection.brute_force]
# window = "5m"                           # failures count for this long
# backoff_after = 5                       # token endpoint: 429 slow_down after this many
# backoff_base = "1s"                     #   waiting this long, doubling
# backoff_max = "60s"                     #   up to this
# lockout_after = 20                      #   then locked out
# lockout = "15m"                         #   for this long
# data_plane_backoff_after = 20           # invalid writs from one address: slowed down
# data_plane_block_after = 100            #   then blocked
# data_plane_block = "5m"                 #   for this long
# namespace = "prod"                      # instances share counts when namespaces match
#
# Detections posted to webhooks, signed (Writ-Webhook-Signature), retried with backoff.
# [[detection.webhooks]]
# url = "https://hooks.example.com/writ"
# secret = "${env:WRIT_WEBHOOK_SECRET}"   # at least 16 bytes
# detectors = ["prompt_secret", "brute_force"]   # default: all
# timeout = "5s"
# max_attempts = 6
# backoff_base = "500ms"
# ca_file = "/etc/writ/internal-ca.pem"   # trust this CA for the receiver
# allow_private_network = false           # a receiver on a private address

# The audit log (docs/audit.md): one record per decision, Merkle tree, signed checkpoints.
# [audit]
# mode = "strict"                         # refuse what cannot be audited (503); or "best_effort"
# sink = "sqlite"                         # <data_dir>/audit.db; or "postgres" / "file"
# postgres_url = "${env:AUDIT_DATABASE_URL}"
# file = "/var/log/writ/audit.jsonl"
# checkpoint_every = 1000                 # records between signed checkpoints
# checkpoint_interval = "60s"             # or this long, whichever first (and at shutdown)
# durability = "committed"                # synced to disk at checkpoints; "synced": every write
# client_addresses = true                 # record client addresses (as pseudonyms)

# Prices in USD per million tokens, overriding the shipped table.
# [pricing."gpt-4o-mini"]
# input = 0.15
# output = 0.60
# cached_input = 0.075
"#;

pub fn run(args: InitArgs) -> anyhow::Result<()> {
    if args.demo {
        anyhow::bail!(
            "`writ init --demo` is gone: the demo's mock upstream is not configured but \
             started by `writ serve --demo`. Run `writ init`, then `writ serve --demo --config {}`",
            args.path.display()
        );
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true);
    if args.force {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    let mut file = options.open(&args.path).with_context(|| {
        format!(
            "cannot create {} (use --force to overwrite an existing file)",
            args.path.display()
        )
    })?;
    file.write_all(TEMPLATE.as_bytes())?;
    println!(
        "wrote {}; start with: writ serve --config {}",
        args.path.display(),
        args.path.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use writ_gateway::config::{Config, RawConfig};

    #[test]
    fn template_is_a_valid_config() {
        let raw = RawConfig::from_toml(super::TEMPLATE).unwrap();
        let config = Config::from_raw(raw, &|_| None).unwrap();
        assert!(config.upstreams.is_empty());
    }

    /// The fields the parser knows in the table `header` opens (`[server]`,
    /// `[[limit]]`, `[upstreams.x]`), read from its refusal of an unknown one; `None` when
    /// that header opens no table of named fields.
    fn known_fields(header: &str) -> Option<Vec<String>> {
        let text = format!("{header}\nzz_not_an_option = 1\n");
        let err = RawConfig::from_toml(&text).err()?.to_string();
        let list = err.split("expected one of ").nth(1).or_else(|| {
            err.split("expected `")
                .nth(1)
                .filter(|_| err.contains("unknown field"))
        })?;
        Some(
            list.split(',')
                .filter_map(|f| f.trim().trim_start_matches('`').split('`').next())
                .map(str::to_string)
                .filter(|f| !f.is_empty())
                .collect(),
        )
    }

    /// The template's text under the section `path` (the tables whose header, commented
    /// or not, is `[path]`, `[[path]]` or `[path.<name>]` when `named`).
    fn section_text(path: &str, named: bool) -> String {
        let mut out = String::new();
        let mut inside = false;
        for line in super::TEMPLATE.lines() {
            let bare = line.trim_start_matches('#').trim();
            if bare.starts_with('[') {
                let name = bare.trim_matches(|c| c == '[' || c == ']');
                let name = name.split(']').next().unwrap_or(name);
                inside = if named {
                    name.strip_prefix(path)
                        .is_some_and(|rest| rest.starts_with('.') && !rest[1..].contains('.'))
                } else {
                    name == path
                };
                continue;
            }
            if inside {
                out.push_str(bare);
                out.push('\n');
            }
        }
        out
    }

    /// Every option the parser knows appears in the template, in its own section,
    /// commented or not: a new option cannot be added without being shown to operators.
    #[test]
    fn template_shows_every_option_the_parser_knows() {
        let mut missing = Vec::new();
        let mut sections = BTreeSet::new();
        // (path, header to probe it with, whether its tables are named `[path.<name>]`)
        let mut queue = vec![(String::new(), String::new(), false)];
        while let Some((path, header, named)) = queue.pop() {
            let Some(fields) = known_fields(&header) else {
                continue;
            };
            sections.insert(path.clone());
            let text = if path.is_empty() {
                super::TEMPLATE.to_string()
            } else {
                section_text(&path, named)
            };
            // Sub-tables of a named table are probed under one name of it.
            let probe_base = if named {
                format!("{path}.x")
            } else {
                path.clone()
            };
            for field in fields {
                let child = if path.is_empty() {
                    field.clone()
                } else {
                    format!("{path}.{field}")
                };
                let probe_child = if path.is_empty() {
                    field.clone()
                } else {
                    format!("{probe_base}.{field}")
                };
                // A field that opens tables of its own: a table, named tables, or an array.
                let probes = [
                    (format!("[{probe_child}]"), false),
                    (format!("[{probe_child}.x]"), true),
                    (format!("[[{probe_child}]]"), false),
                ];
                if let Some((probe, named)) =
                    probes.into_iter().find(|(h, _)| known_fields(h).is_some())
                {
                    queue.push((child, probe, named));
                    continue;
                }
                let as_key = text.lines().any(|l| {
                    l.trim_start_matches('#')
                        .trim()
                        .strip_prefix(field.as_str())
                        .is_some_and(|r| r.trim_start().starts_with('='))
                });
                let as_table = super::TEMPLATE.lines().any(|l| {
                    let bare = l.trim_start_matches('#').trim().trim_start_matches('[');
                    bare.strip_prefix(child.as_str())
                        .is_some_and(|r| r.starts_with(']') || r.starts_with('.'))
                });
                if !path.is_empty() && !as_key && !as_table {
                    missing.push(child);
                }
            }
        }
        assert!(
            sections.len() > 5,
            "the probe found the sections: {sections:?}"
        );
        assert!(
            missing.is_empty(),
            "options the template does not show: {missing:?}"
        );
    }
}
