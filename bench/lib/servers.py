"""bench/run's servers: the paths and keys of a run, the mock's canned answers, the nginx
mock and proxy, and writ's configurations, command line and gateways."""

import json
import os
import shutil
import subprocess

from procs import Proc, die, free_port, wait_port

HERE = os.path.dirname(os.path.abspath(__file__))
BENCH = os.path.dirname(HERE)
REPO = os.path.dirname(BENCH)
WRIT = os.environ.get("WRIT_BIN", os.path.join(REPO, "target", "release", "writ"))
# One proxy hop on writ's serving stack with no gateway work (crates/writ-gateway/examples/hop.rs).
HOP = os.environ.get("HOP_BIN", os.path.join(REPO, "target", "release", "examples", "hop"))
# The same hop with hyper used directly and per-thread upstream connections
# (crates/writ-gateway/examples/lean_hop.rs); by default beside the hop.
LEAN_HOP = os.environ.get("LEAN_HOP_BIN", os.path.join(os.path.dirname(HOP), "lean_hop"))
VENV = os.environ.get("BENCH_VENV", os.path.join(BENCH, ".venv"))
UPSTREAM_KEY = "sk-bench-0123456789abcdefghijklmnopqrstuvwxyzABCD"
LITELLM_KEY = "sk-litellm-bench-master-key-0123456789"
REDIS = ("127.0.0.1", 6379)
POSTGRES_URL = "postgres://postgres@127.0.0.1:5432/test"
TTL = 7200  # writs live two hours: longer than any run

CHAT_BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hello in one short sentence."}], "max_tokens": 64}
STREAM_BODY = dict(CHAT_BODY, stream=True, stream_options={"include_usage": True})

COMPLETION = {
    "id": "chatcmpl-bench0001", "object": "chat.completion", "created": 1767225600,
    "model": "gpt-4o-mini-2024-07-18",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello! How can I help you today?", "refusal": None},
                 "logprobs": None, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 14, "completion_tokens": 9, "total_tokens": 23},
    "system_fingerprint": "fp_bench",
}


def sse_body() -> str:
    base = {"id": "chatcmpl-bench0002", "object": "chat.completion.chunk", "created": 1767225600,
            "model": "gpt-4o-mini-2024-07-18", "system_fingerprint": "fp_bench"}
    words = ["Hello", "!", " How", " can", " I", " help", " you", " today", "?"]
    chunks = [dict(base, choices=[{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}], usage=None)]
    chunks += [dict(base, choices=[{"index": 0, "delta": {"content": w}, "finish_reason": None}], usage=None) for w in words]
    chunks.append(dict(base, choices=[{"index": 0, "delta": {}, "finish_reason": "stop"}], usage=None))
    chunks.append(dict(base, choices=[], usage=COMPLETION["usage"]))
    return "".join(f"data: {json.dumps(c, separators=(',', ':'))}\n\n" for c in chunks) + "data: [DONE]\n\n"


# The port of the OTLP receiver that discards (a server of the mock's nginx), once started.
OTLP_PORT = None


def nginx_conf(run_dir, name, servers: str) -> str:
    d = os.path.join(run_dir, name)
    os.makedirs(d, exist_ok=True)
    conf = f"""
worker_processes 2;
daemon off;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {d}/body;
  proxy_temp_path {d}/proxy;
  fastcgi_temp_path {d}/fastcgi;
  uwsgi_temp_path {d}/uwsgi;
  scgi_temp_path {d}/scgi;
  keepalive_requests 10000000;
  keepalive_timeout 300s;
{servers}
}}
"""
    path = os.path.join(d, "nginx.conf")
    with open(path, "w") as f:
        f.write(conf)
    return d


def start_nginx(run_dir, name, servers, port) -> Proc:
    d = nginx_conf(run_dir, name, servers)
    p = Proc(name, ["nginx", "-p", d, "-c", os.path.join(d, "nginx.conf")], os.path.join(d, "out.log"))
    wait_port(port, p, 10)
    return p


def mock_servers(port, stream_port, otlp_port) -> str:
    completion = json.dumps(COMPLETION, separators=(",", ":"))
    unauthorized = '{"error":{"message":"Incorrect API key provided","type":"invalid_request_error","code":"invalid_api_key"}}'
    auth = f"""if ($http_authorization != "Bearer {UPSTREAM_KEY}") {{ return 401 '{unauthorized}'; }}"""
    return f"""
  server {{
    listen 127.0.0.1:{port};
    location = /v1/chat/completions {{
      default_type application/json;
      {auth}
      return 200 '{completion}';
    }}
  }}
  server {{
    listen 127.0.0.1:{stream_port};
    location = /v1/chat/completions {{
      default_type text/event-stream;
      {auth}
      return 200 '{sse_body()}';
    }}
  }}
  server {{
    # The OTLP/HTTP receiver of the traced row: reads each export and discards it, answering
    # 200 with an empty body (an empty ExportTraceServiceResponse), as a collector does.
    listen 127.0.0.1:{otlp_port};
    client_max_body_size 64m;
    location = /v1/traces {{
      default_type application/x-protobuf;
      return 200;
    }}
  }}
"""


def proxy_servers(port, stream_port, mock, mock_stream) -> str:
    def server(listen, upstream):
        return f"""
  server {{
    listen 127.0.0.1:{listen};
    location = /v1/chat/completions {{
      proxy_pass http://{upstream};
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Authorization "Bearer {UPSTREAM_KEY}";
      proxy_buffering off;
    }}
  }}"""
    return f"""
  upstream mock {{ server 127.0.0.1:{mock}; keepalive 64; }}
  upstream mockstream {{ server 127.0.0.1:{mock_stream}; keepalive 64; }}
{server(port, "mock")}
{server(stream_port, "mockstream")}
"""


LIMITS = """
[[limit]]
scope = ["tenant", "agent", "upstream"]
dimension = "requests"
per = "minute"
limit = 1000000000

[[limit]]
scope = ["writ"]
dimension = "tokens"
per = "day"
limit = 1000000000000

[[limit]]
scope = ["agent", "upstream"]
dimension = "concurrency"
limit = 1000000
"""


def writ_config(kind, port, tenant, mock, mock_stream, otlp=None) -> str:
    text = f"""
[server]
listen = "127.0.0.1:{port}"

[tokens]
tenant = "{tenant}"
max_ttl = "{TTL}s"

[upstreams.mock]
kind = "openai"
base_url = "http://127.0.0.1:{mock}"
api_key = "{UPSTREAM_KEY}"
allow_private_network = true

[upstreams.mockstream]
kind = "openai"
base_url = "http://127.0.0.1:{mock_stream}"
api_key = "{UPSTREAM_KEY}"
allow_private_network = true
"""
    if kind == "minimal":
        text += """
[audit]
mode = "best_effort"

[detection.modes]
prompt_secret = "off"
response_secret = "off"
url_credential = "off"
weak_jwt = "off"
brute_force = "off"
raw_provider_key = "off"
"""
    elif kind == "mint":  # the gateway the scaling run's writs are minted at; never measured
        text += '\n[audit]\nmode = "best_effort"\n'
    else:
        text += LIMITS
        if kind == "traces":  # writ full, every request traced, exported to a receiver that discards
            text += f"""
[traces]
endpoint = "http://127.0.0.1:{otlp}/v1/traces"
sample_ratio = 1.0
"""
        if kind == "best_effort":  # writ full with the audit record written after the response
            text += '\n[audit]\nmode = "best_effort"\n'
        if kind == "distributed":
            text += f"""
[limiter]
backend = "redis"
redis_url = "redis://{REDIS[0]}:{REDIS[1]}"

[audit]
mode = "strict"
sink = "postgres"
postgres_url = "{POSTGRES_URL}"
"""
    return text


def writ_cli(*args, timeout=60) -> str:
    r = subprocess.run([WRIT, *args], capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        die(f"writ {' '.join(args[:3])} failed: {r.stderr.strip()}")
    return r.stdout


def start_hop(run_dir, name, mock, mock_stream, wrap=(), start_timeout=10, binary=None) -> tuple:
    """The hop on writ's stack (examples/hop.rs, or `binary` such as LEAN_HOP, which takes
    the same arguments) in front of the mock: (Proc, port)."""
    port = free_port()
    p = Proc(name, [*wrap, binary or HOP, f"127.0.0.1:{port}", f"http://127.0.0.1:{mock}",
                    f"http://127.0.0.1:{mock_stream}", UPSTREAM_KEY], os.path.join(run_dir, f"{name}.log"))
    wait_port(port, p, start_timeout)
    return p, port


def start_writ(run_dir, name, kind, base_data, tenant, mock, mock_stream, wrap=(), start_timeout=30) -> tuple:
    d = os.path.join(run_dir, name)
    shutil.copytree(base_data, os.path.join(d, "data"))
    port = free_port()
    cfg = os.path.join(d, "writ.toml")
    with open(cfg, "w") as f:
        f.write(writ_config(kind, port, tenant, mock, mock_stream, OTLP_PORT))
    env = dict(os.environ)
    if kind == "minimal":  # no per-request log line; the other rows keep the default (info)
        env["WRIT_LOG"] = "warn"
    p = Proc(name, [*wrap, WRIT, "serve", "--config", cfg, "--data-dir", os.path.join(d, "data")],
             os.path.join(d, "out.log"), env=env)
    wait_port(port, p, start_timeout)
    return p, port
