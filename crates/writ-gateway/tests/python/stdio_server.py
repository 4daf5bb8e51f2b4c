"""An MCP server over stdio, built with the official SDK, that the gateway starts itself
(tests/mcp_stdio.rs). Its tools report what the process sees and misbehave on request."""

import json
import os

import anyio
from mcp.server.mcpserver import Context, MCPServer

# The pipe the SDK answers on. The SDK points fd 1 at stderr while it serves, so this
# copy, taken first, is how a tool writes a stray line onto the wire.
WIRE = os.dup(1)

server = MCPServer("writ-stdio-test")

# Callers of `rendezvous` that arrived, and the event that lets them all go.
arrived = []
together = None


@server.tool()
def add(a: int, b: int) -> str:
    return str(a + b)


@server.tool()
def environment() -> str:
    return json.dumps({"keys": sorted(os.environ), "cwd": os.getcwd(), "pid": os.getpid()})


@server.tool()
def token() -> str:
    return "the token is " + os.environ.get("FILES_TOKEN", "")


@server.tool()
async def rendezvous(name: str) -> str:
    """Answers only once two calls are in flight at once, each with its own name."""
    global together
    if together is None:
        together = anyio.Event()
    arrived.append(name)
    if len(arrived) >= 2:
        together.set()
    await together.wait()
    return "you are " + name


@server.tool()
def crash() -> str:
    os._exit(3)


@server.tool()
async def ignore() -> str:
    await anyio.sleep_forever()
    return "never"


@server.tool()
def garbage() -> str:
    for line in [
        b"this is not JSON\n",
        b"[1, 2, 3]\n",
        b'{"jsonrpc": "2.0", "id": 999999, "result": {}}\n',
        b'{"jsonrpc": "2.0", "id": "nobody", "result": {}}\n',
        b"\xff\xfe\xfd\n",
        b'{"jsonrpc": "2.0", "method": "notifications/message", "params": {"level": "info", "data": "x"}}\n',
    ]:
        os.write(WIRE, line)
    return "still here"


@server.tool()
def big(n: int) -> str:
    return "x" * n


@server.tool()
async def ask_roots(ctx: Context) -> str:
    try:
        await ctx.session.list_roots()
    except Exception as e:  # the gateway refuses: the error, not a hang
        return "refused " + str(getattr(getattr(e, "error", None), "code", None))
    return "answered"


if __name__ == "__main__":
    server.run("stdio")
