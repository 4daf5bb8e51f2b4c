"""A small asyncio HTTP/1.1 client for the torture harness: one connection per request
(``Connection: close``), bodies read by length, chunked or to the close. Standard library
only, so the harness runs with any Python 3.9+.
"""

import asyncio
import json
from urllib.parse import urlsplit


class Cut(Exception):
    """The connection failed or closed before the answer was whole."""


class TimedOut(Cut):
    """No whole answer within the timeout; the connection was closed."""


class Refused(Exception):
    """Nothing listened: the request never reached the gateway."""


class Reply:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def json(self):
        return json.loads(self.body)


async def _read_body(reader, headers):
    if headers.get("transfer-encoding", "").lower() == "chunked":
        out = bytearray()
        while True:
            line = await reader.readuntil(b"\r\n")
            size = int(line.split(b";")[0], 16)
            if size == 0:
                # Trailers, then the empty line.
                while (await reader.readuntil(b"\r\n")) != b"\r\n":
                    pass
                return bytes(out)
            out += await reader.readexactly(size)
            if await reader.readexactly(2) != b"\r\n":
                raise Cut("bad chunk framing")
    if "content-length" in headers:
        return await reader.readexactly(int(headers["content-length"]))
    return await reader.read()


async def request(url, method="GET", headers=None, body=None, timeout=60.0, source=None):
    """Sends one request and returns the whole :class:`Reply`, from the local address
    ``source`` when given (any 127.x.y.z on loopback). Raises :class:`Refused` when the
    connection is refused, :class:`Cut` when it breaks or times out on the way."""
    parts = urlsplit(url)
    host, port = parts.hostname, parts.port or 80
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(
            host, port, limit=1 << 20, local_addr=(source, 0) if source else None
        ), timeout)
    except (ConnectionRefusedError, OSError) as e:
        raise Refused(str(e)) from None
    except asyncio.TimeoutError:
        raise Refused("connect timed out") from None
    try:
        payload = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
        head = [f"{method} {path} HTTP/1.1", f"host: {parts.netloc}", "connection: close"]
        for k, v in (headers or {}).items():
            head.append(f"{k}: {v}")
        if payload is not None:
            head.append(f"content-length: {len(payload)}")
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + (payload or b""))

        async def read():
            status_line = await reader.readuntil(b"\r\n")
            status = int(status_line.split(b" ")[1])
            hdrs = {}
            while True:
                line = await reader.readuntil(b"\r\n")
                if line == b"\r\n":
                    break
                k, _, v = line.decode("latin-1").partition(":")
                hdrs[k.strip().lower()] = v.strip()
            return Reply(status, hdrs, await _read_body(reader, hdrs))

        return await asyncio.wait_for(read(), timeout)
    except asyncio.TimeoutError:
        raise TimedOut("timed out") from None
    except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError, IndexError, OSError) as e:
        raise Cut(f"{type(e).__name__}: {e}") from None
    finally:
        writer.close()
