"""bench/run's Portkey row: Portkey's open-source AI gateway (npm `@portkey-ai/gateway`,
installed by bench/lib/install.sh under bench/portkey), routed to the mock as an OpenAI
provider with a custom host, the mock's key sent by the client as Portkey expects.

Its fastest mode as shipped: one node process (the gateway has no worker option), headless
(no console, no log stream), NODE_ENV=production, no cache, no Redis, no guardrails.
"""

import json
import os

from procs import Proc, die, free_port, wait_port
from servers import BENCH, HERE

ROW = "Portkey gateway (OSS)"
DIR = os.environ.get("BENCH_PORTKEY", os.path.join(BENCH, "portkey"))
PACKAGE = os.path.join(DIR, "node_modules", "@portkey-ai", "gateway")
SERVER = os.path.join(PACKAGE, "build", "start-server.js")


def headers(mock_port) -> dict:
    """The headers that route a request to the mock on `mock_port` as OpenAI."""
    return {"x-portkey-provider": "openai", "x-portkey-custom-host": f"http://127.0.0.1:{mock_port}/v1"}


def version() -> str:
    try:
        with open(os.path.join(PACKAGE, "package.json")) as f:
            return json.load(f).get("version", "?")
    except OSError:
        return "?"


def start(run_dir) -> tuple:
    """Portkey's gateway on a free port of 127.0.0.1: (Proc, port)."""
    if not os.path.exists(SERVER):
        die(f"{SERVER} not found: bench/lib/install.sh installs it (npm)")
    d = os.path.join(run_dir, "portkey")
    os.makedirs(d, exist_ok=True)
    port = free_port()
    env = dict(os.environ, NODE_ENV="production")
    proc = Proc("portkey", ["node", "--require", os.path.join(HERE, "portkey-preload.cjs"), SERVER,
                            f"--port={port}", "--headless"], os.path.join(d, "out.log"), env=env, cwd=d)
    wait_port(port, proc, 60)
    return proc, port
