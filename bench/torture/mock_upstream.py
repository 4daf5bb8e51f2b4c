"""The torture harness's mock upstream: an OpenAI chat-completions server that reports
exact usage and counts what it served.

Each request names its own usage in its last message: ``torture rid=<id> in=<prompt
tokens> out=<completion tokens> ms=<time to answer>``. The mock answers with exactly that
usage (in the body, or for a stream in a usage chunk when ``stream_options.include_usage``
is true), like a provider whose tokenizer counted those tokens. It checks the credential
the gateway injects (``Authorization: Bearer <key>``, or ``api-key``), as a real provider
does, and refuses anything else with OpenAI's 401.

``GET /_torture/served`` (no credential: it is loopback-only and holds no secret) returns
what was served: per request id, the usage reported and whether the whole answer was
written, plus counts of refusals and of requests that carried the caller's key.

Run standalone with ``python3 mock_upstream.py --key sk-... [--port 0]``; it prints
``mock listening on <port>`` once it accepts connections. Standard library only.
"""

import argparse
import asyncio
import json
import re
import sys
import time

MARKER = re.compile(r"torture rid=([A-Za-z0-9_-]{1,64}) in=(\d{1,9}) out=(\d{1,9}) ms=(\d{1,6})")
MAX_BODY = 1 << 20
MAX_HEADER_BYTES = 64 * 1024


class Served:
    """What the mock answered, for the harness's ledger check."""

    def __init__(self):
        self.requests = {}  # rid -> list of [prompt, completion, complete, stream]
        self.unauthorized = 0
        self.bad_requests = 0
        self.saw_forbidden = 0  # requests carrying a string they must not (the caller's key)
        self.forbidden = []  # strings that must never reach the upstream

    def as_json(self):
        return {
            "requests": self.requests,
            "unauthorized": self.unauthorized,
            "bad_requests": self.bad_requests,
            "saw_forbidden": self.saw_forbidden,
        }


class HttpError(Exception):
    pass


async def read_request(reader):
    """One HTTP/1.1 request: (method, path, headers, body), or None at a clean EOF."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as e:
        if not e.partial:
            return None
        raise HttpError("truncated head")
    except asyncio.LimitOverrunError:
        raise HttpError("head too large")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3:
        raise HttpError("bad request line")
    method, path, _ = parts
    headers = {}
    for line in lines[1:]:
        if not line:
            continue
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if "content-length" in headers:
        n = int(headers["content-length"])
        if n < 0 or n > MAX_BODY:
            raise HttpError("body too large")
        body = await reader.readexactly(n)
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        body = b""
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                break
            body += await reader.readexactly(size)
            await reader.readexactly(2)
            if len(body) > MAX_BODY:
                raise HttpError("body too large")
    else:
        body = b""
    return method, path, headers, body


def response(status, reason, body, content_type="application/json"):
    return (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: {content_type}\r\n"
        f"content-length: {len(body)}\r\n\r\n"
    ).encode() + body


def openai_error(status, reason, message, kind, code):
    body = json.dumps({"error": {"message": message, "type": kind, "param": None, "code": code}})
    return response(status, reason, body.encode())


def chunk(data):
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def sse(obj):
    return chunk(b"data: " + json.dumps(obj).encode() + b"\n\n")


class Mock:
    def __init__(self, key):
        self.key = key
        self.served = Served()

    def authorized(self, headers):
        auth = headers.get("authorization", "")
        return auth == f"Bearer {self.key}" or headers.get("api-key") == self.key

    async def handle(self, reader, writer):
        try:
            while True:
                try:
                    req = await read_request(reader)
                except (HttpError, ValueError, asyncio.IncompleteReadError):
                    self.served.bad_requests += 1
                    writer.write(openai_error(400, "Bad Request", "malformed HTTP", "invalid_request_error", None))
                    await writer.drain()
                    return
                if req is None:
                    return
                keep = await self.answer(writer, *req)
                if not keep:
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            try:
                writer.close()
            except Exception:
                pass

    async def answer(self, writer, method, path, headers, body):
        if method == "GET" and path == "/_torture/served":
            writer.write(response(200, "OK", json.dumps(self.served.as_json()).encode()))
            await writer.drain()
            return True
        if method == "POST" and path == "/_torture/forbid":
            self.served.forbidden.append(body.decode("utf-8", "replace"))
            writer.write(response(204, "No Content", b""))
            await writer.drain()
            return True
        raw = " ".join(headers.values()).encode() + body
        if any(f and f.encode() in raw for f in self.served.forbidden):
            self.served.saw_forbidden += 1
        if not self.authorized(headers):
            self.served.unauthorized += 1
            writer.write(openai_error(401, "Unauthorized", "Incorrect API key provided.", "invalid_request_error", "invalid_api_key"))
            await writer.drain()
            return True
        if method != "POST" or not path.endswith("/chat/completions"):
            writer.write(openai_error(404, "Not Found", f"Unknown request URL: {method} {path}", "invalid_request_error", "unknown_url"))
            await writer.drain()
            return True
        try:
            req = json.loads(body)
            text = req["messages"][-1]["content"]
            m = MARKER.search(text)
            if m is None:
                raise ValueError("no torture marker")
        except (ValueError, KeyError, TypeError, IndexError):
            self.served.bad_requests += 1
            writer.write(openai_error(400, "Bad Request", "not a torture request", "invalid_request_error", None))
            await writer.drain()
            return True
        rid, prompt, completion, ms = m.group(1), int(m.group(2)), int(m.group(3)), int(m.group(4))
        stream = req.get("stream") is True
        include_usage = stream and (req.get("stream_options") or {}).get("include_usage") is True
        # Served from the moment the model starts: a real provider bills a cut stream too.
        entry = [prompt, completion, False, stream]
        self.served.requests.setdefault(rid, []).append(entry)
        usage = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
        model = req.get("model", "gpt-4o-mini")
        created = int(time.time())
        cid = f"chatcmpl-{rid}"
        if not stream:
            await asyncio.sleep(ms / 1000)
            out = {
                "id": cid, "object": "chat.completion", "created": created, "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok " * 4}, "finish_reason": "stop"}],
                "usage": usage,
            }
            writer.write(response(200, "OK", json.dumps(out).encode()))
            await writer.drain()
            entry[2] = True
            return True
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
            b"cache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n"
        )
        base = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model}
        pieces = 4
        writer.write(sse({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]}))
        await writer.drain()
        for _ in range(pieces):
            await asyncio.sleep(ms / 1000 / pieces)
            writer.write(sse({**base, "choices": [{"index": 0, "delta": {"content": "ok "}, "finish_reason": None}]}))
            await writer.drain()
        writer.write(sse({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}))
        if include_usage:
            writer.write(sse({**base, "choices": [], "usage": usage}))
        writer.write(chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n")
        await writer.drain()
        entry[2] = True
        return True


async def serve(key, port, ready=None):
    mock = Mock(key)
    server = await asyncio.start_server(mock.handle, "127.0.0.1", port, limit=MAX_HEADER_BYTES, backlog=1024)
    bound = server.sockets[0].getsockname()[1]
    print(f"mock listening on {bound}", flush=True)
    async with server:
        await server.serve_forever()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--key", required=True, help="the credential the gateway must inject")
    p.add_argument("--port", type=int, default=0)
    a = p.parse_args()
    try:
        asyncio.run(serve(a.key, a.port))
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
