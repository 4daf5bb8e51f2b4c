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
}

/// The file `writ init` writes. Every option, with its default.
pub const TEMPLATE: &str = r#"# writ.toml: configuration of the writ gateway.
# Run with: writ serve --config writ.toml (check it first with: writ config check)
# Unknown keys are errors. Secrets may be written as ${env:NAME} to read them from the
# environment at start-up instead of storing them in this file.

[server]
# Address to listen on.
listen = "127.0.0.1:8787"
# Where the SQLite database and the key files live (created on first start, mode 0700).
data_dir = "writ-data"
# Largest request body accepted, in bytes; larger bodies get 413 before they are read.
max_body_bytes = 10485760
# Serving threads, one runtime each (default: one per CPU core; 0 = one shared runtime).
# workers = 4

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

[tokens]
# Tenant agents belong to when none is named.
tenant = "default"
# Longest lifetime of a writ. 30s is the default and the recommended ceiling.
max_ttl = "30s"

# Upstreams: one table per upstream, named as grants name them ("upstream": "openai").
# kind = "openai":    OpenAI or any server speaking its API with a Bearer key.
# kind = "anthropic": Anthropic's Messages API (x-api-key).
# kind = "gemini":    the Gemini Developer API (x-goog-api-key).
# kind = "azure":     Azure OpenAI (api-key); base_url is the resource endpoint, and
#                     deployments = { "prod-4o" = "gpt-4o" } names each deployment's model.
# kind = "vertex":    Vertex AI; a service-account key is exchanged for access tokens.
# kind = "bedrock":   AWS Bedrock Runtime; every request is signed with SigV4.
# kind = "mcp":       an MCP tool server at base_url (POST /mcp/<name>).
# kind = "http":      a plain HTTP API (/u/<name>/...).
# kind = "mock":      the built-in mock of OpenAI (no base_url: the gateway runs it).
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
# auth_header = "x-api-key"                # mcp/http only: send the key in this header,
# basic_user = "svc"                       #   or as the password of HTTP Basic,
# auth_query = "key"                       #   or as this query parameter (upstream only)
#
# [upstreams.vertex]
# kind = "vertex"
# location = "us-central1"                 # the base_url defaults from it
# service_account_file = "/etc/writ/sa.json"   # or service_account_json = "${env:SA_JSON}"
# project = "my-project"                   # default: the key file's project_id
# token_uri = "https://oauth2.googleapis.com/token"   # default: the key file's
#
# [upstreams.bedrock]
# kind = "bedrock"
# region = "us-east-1"                     # base_url defaults to bedrock-runtime.<region>
# aws_access_key_id = "${env:AWS_ACCESS_KEY_ID}"
# aws_secret_access_key = "${env:AWS_SECRET_ACCESS_KEY}"
# aws_session_token = "${env:AWS_SESSION_TOKEN}"   # optional, for temporary credentials
#
# When several upstreams speak the same API, a client picks one with the
# x-writ-upstream header; with only one, it is used.

[upstreams.demo]
kind = "mock"

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

# The audit log (docs/audit.md): one record per decision, Merkle tree, signed checkpoints.
# [audit]
# mode = "strict"                         # refuse what cannot be audited (503); or "best_effort"
# sink = "sqlite"                         # <data_dir>/audit.db; or "postgres" / "file"
# postgres_url = "${env:AUDIT_DATABASE_URL}"
# file = "/var/log/writ/audit.jsonl"
# checkpoint_every = 1000                 # records between signed checkpoints
# checkpoint_interval = "60s"             # or this long, whichever first (and at shutdown)
# durability = "committed"                # synced to disk at checkpoints; "synced": every write

# Prices in USD per million tokens, overriding the shipped table.
# [pricing."gpt-4o-mini"]
# input = 0.15
# output = 0.60
# cached_input = 0.075
"#;

pub fn run(args: InitArgs) -> anyhow::Result<()> {
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
    use writ_gateway::config::{Config, RawConfig};

    #[test]
    fn template_is_a_valid_config() {
        let raw = RawConfig::from_toml(super::TEMPLATE).unwrap();
        let config = Config::from_raw(raw, &|_| None).unwrap();
        assert!(config.upstreams.contains_key("demo"));
    }
}
