"""A small MCP server built with the official `mcp` SDK (streamable HTTP, both the
2026-07-28 single-exchange era and the initialize/`Mcp-Session-Id` era), with three tools:
`book_flight`, `cancel_flight`, `list_flights`.

It has its own credential, a static bearer key given in `FLIGHTS_KEY`, and refuses any
request that does not carry exactly `Authorization: Bearer <key>` (401 with a JSON-RPC
error, before the SDK sees it). It records every request it receives: method, path, every header, and the body.
Nothing reaches it but through the gateway, except its report:

    GET /_report  (with its key)  ->  {"requests": [{"method", "path", "headers", "body"}]}

which the test asks directly, to check that no writ ever arrived here (the gateway must
strip the agent's credential and inject this server's own).

Prints `listening on http://127.0.0.1:<port>` once its socket listens, then serves until
killed.
"""

import json
import os
import socket

import uvicorn
from mcp.server.mcpserver import MCPServer

KEY = os.environ["FLIGHTS_KEY"]
EXPECTED_AUTHORIZATION = f"Bearer {KEY}"
# Bodies are recorded up to this size: the tests send small calls, and a test that sends
# a large one still finds any writ, which would sit in the first bytes of its headers.
MAX_RECORDED_BODY = 64 * 1024

BOOKINGS: dict[str, dict[str, str]] = {}

mcp = MCPServer(name="flights", log_level="WARNING")


@mcp.tool()
def book_flight(flight: str, date: str) -> str:
    """Book a seat on `flight` on `date` (YYYY-MM-DD); answers the booking reference."""
    reference = f"BK-{flight}-{date}"
    BOOKINGS[reference] = {"flight": flight, "date": date}
    return reference


@mcp.tool()
def cancel_flight(booking: str) -> str:
    """Cancel the booking with reference `booking`."""
    BOOKINGS.pop(booking, None)
    return f"cancelled {booking}"


@mcp.tool()
def list_flights(date: str) -> list[str]:
    """The flights leaving on `date`."""
    return ["LH123", "LH456", "BA789"]


SEEN: list[dict] = []


def header_map(scope) -> dict[str, list[str]]:
    headers: dict[str, list[str]] = {}
    for name, value in scope["headers"]:
        headers.setdefault(name.decode("latin-1").lower(), []).append(value.decode("latin-1"))
    return headers


async def respond(send, status: int, body: bytes, content_type: str = "application/json") -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


def recording(app):
    """ASGI middleware: records each request, answers `/_report`, and refuses any request
    without this server's own key before the SDK sees it."""

    async def wrapped(scope, receive, send):
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        headers = header_map(scope)
        authorized = headers.get("authorization") == [EXPECTED_AUTHORIZATION]
        if scope["path"] == "/_report":
            if not authorized:
                await respond(send, 401, b'{"error":"this server\'s key is required"}')
                return
            await respond(send, 200, json.dumps({"requests": SEEN}).encode())
            return

        # Read the whole body to record it, then hand the SDK a receive that replays it.
        chunks: list[bytes] = []
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        SEEN.append(
            {
                "method": scope["method"],
                "path": scope["path"],
                "query": scope.get("query_string", b"").decode("latin-1"),
                "headers": headers,
                "body": body[:MAX_RECORDED_BODY].decode("utf-8", "replace"),
            }
        )
        if not authorized:
            await respond(
                send,
                401,
                b'{"jsonrpc":"2.0","id":null,"error":{"code":-32001,"message":"not this server\'s key"}}',
            )
            return

        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await app(scope, replay, send)

    return wrapped


def main() -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    port = sock.getsockname()[1]
    app = recording(mcp.streamable_http_app(streamable_http_path="/mcp", host="127.0.0.1"))
    config = uvicorn.Config(app, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    print(f"listening on http://127.0.0.1:{port}", flush=True)
    server.run(sockets=[sock])


if __name__ == "__main__":
    main()
