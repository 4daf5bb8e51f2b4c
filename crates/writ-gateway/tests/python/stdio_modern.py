"""A stdio MCP server that speaks only the 2026-07-28 revision, without the initialize
handshake (tests/mcp_stdio.rs). Standard library only: it refuses `initialize` (and asks
its client for roots in the same write), and echoes every other request back, so the test
sees exactly what the gateway passed on and what it answered."""

import json
import sys

# What the gateway answered to this server's own request, sent with its handshake answer.
roots_answer = None

for line in sys.stdin:
    message = json.loads(line)
    if "method" not in message:
        if message.get("id") == "r1":
            roots_answer = message
        continue
    if "id" not in message:
        continue
    if message["method"] == "initialize":
        answer = {"jsonrpc": "2.0", "id": message["id"], "error": {
            "code": -32022, "message": "this server speaks 2026-07-28 only"}}
        ask = {"jsonrpc": "2.0", "id": "r1", "method": "roots/list"}
        # Both in one write: the gateway must not lose the line after its answer.
        sys.stdout.write(json.dumps(answer) + "\n" + json.dumps(ask) + "\n")
        sys.stdout.flush()
        continue
    echoed = {"method": message["method"], "params": message.get("params"), "roots_answer": roots_answer}
    answer = {"jsonrpc": "2.0", "id": message["id"], "result": {
        "content": [{"type": "text", "text": json.dumps(echoed, sort_keys=True)}]}}
    sys.stdout.write(json.dumps(answer) + "\n")
    sys.stdout.flush()
