"""A stdio MCP server that speaks only the 2026-07-28 revision, without the initialize
handshake (tests/mcp_stdio.rs). Standard library only: it refuses `initialize` and echoes
every other request back, so the test sees exactly what the gateway passed on."""

import json
import sys

for line in sys.stdin:
    message = json.loads(line)
    if "id" not in message:
        continue
    if message.get("method") == "initialize":
        answer = {"jsonrpc": "2.0", "id": message["id"], "error": {
            "code": -32022, "message": "this server speaks 2026-07-28 only"}}
    else:
        echoed = {"method": message.get("method"), "params": message.get("params")}
        answer = {"jsonrpc": "2.0", "id": message["id"], "result": {
            "content": [{"type": "text", "text": json.dumps(echoed, sort_keys=True)}]}}
    sys.stdout.write(json.dumps(answer) + "\n")
    sys.stdout.flush()
