"""A mock of the AWS Bedrock Runtime that checks what Bedrock checks.

Every request must carry a SigV4 signature that botocore, recomputing it independently
from the signed headers and x-amz-date, agrees with; otherwise 403 as Bedrock answers.
Serves converse, converse-stream (AWS event-stream framing, written here by hand),
invoke and invoke-with-response-stream. Model ids choose misbehaviour:
"-bytewise" sends a stream one byte per chunk, "-cut" stops inside the last frame,
"-nousage" sends no usage.

Prints {"port": N} on its first line, then serves until stdin closes.
Environment: MOCK_AWS_ACCESS_KEY_ID, MOCK_AWS_SECRET_ACCESS_KEY, MOCK_AWS_REGION,
optionally MOCK_AWS_SESSION_TOKEN.
"""

import base64
import binascii
import hmac
import json
import os
import re
import struct
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

ACCESS_KEY = os.environ["MOCK_AWS_ACCESS_KEY_ID"]
SECRET_KEY = os.environ["MOCK_AWS_SECRET_ACCESS_KEY"]
REGION = os.environ["MOCK_AWS_REGION"]
SESSION_TOKEN = os.environ.get("MOCK_AWS_SESSION_TOKEN")

AUTH_RE = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request, "
    r"SignedHeaders=([a-z0-9;\-]+), Signature=([0-9a-f]{64})$"
)
PATH_RE = re.compile(r"^/model/([^/]+)/(converse|converse-stream|invoke|invoke-with-response-stream)$")

RECORDED = []
LOCK = threading.Lock()


def frame(headers, payload):
    """One event-stream message: prelude, CRCs, string headers (type 7), payload."""
    encoded = b""
    for name, value in headers:
        n, v = name.encode(), value.encode()
        encoded += struct.pack(">B", len(n)) + n + b"\x07" + struct.pack(">H", len(v)) + v
    total = 12 + len(encoded) + len(payload) + 4
    prelude = struct.pack(">II", total, len(encoded))
    prelude += struct.pack(">I", binascii.crc32(prelude))
    message = prelude + encoded + payload
    return message + struct.pack(">I", binascii.crc32(message))


def event(kind, body):
    return frame(
        [(":event-type", kind), (":content-type", "application/json"), (":message-type", "event")],
        json.dumps(body).encode(),
    )


def input_words(body):
    words = 0
    for message in body.get("messages", []):
        content = message.get("content", [])
        if isinstance(content, str):
            words += len(content.split())
            continue
        for block in content:
            if isinstance(block, dict) and isinstance(block.get("text"), str):
                words += len(block["text"].split())
    return max(words, 1)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def send_json(self, status, body, extra=()):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        for name, value in extra:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def deny(self, why):
        self.send_json(
            403,
            {"message": f"The request signature we calculated does not match the signature you provided. ({why})"},
            [("x-amzn-ErrorType", "InvalidSignatureException")],
        )

    def do_GET(self):
        if self.path == "/__requests":
            with LOCK:
                self.send_json(200, RECORDED)
        else:
            self.send_json(404, {"message": "not found"})

    def check_signature(self, body):
        auth = self.headers.get("authorization", "")
        m = AUTH_RE.match(auth)
        if not m:
            return "no SigV4 authorization header"
        key, day, region, service, signed, signature = m.groups()
        if key != ACCESS_KEY:
            return "unknown access key"
        if region != REGION or service != "bedrock":
            return "wrong credential scope"
        amz_date = self.headers.get("x-amz-date", "")
        if not amz_date.startswith(day):
            return "x-amz-date does not match the credential scope"
        names = signed.split(";")
        if "host" not in names or "x-amz-date" not in names:
            return "host and x-amz-date must be signed"
        if SESSION_TOKEN is not None:
            if self.headers.get("x-amz-security-token") != SESSION_TOKEN or "x-amz-security-token" not in names:
                return "missing or wrong session token"
        headers = {}
        for name in names:
            value = self.headers.get(name)
            if value is None:
                return f"signed header {name} is absent"
            headers[name] = value
        request = AWSRequest(
            method=self.command,
            url=f"http://{self.headers['host']}{self.path}",
            data=body,
            headers=headers,
        )
        request.context["timestamp"] = amz_date
        signer = SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY, SESSION_TOKEN), "bedrock", REGION)
        canonical = signer.canonical_request(request)
        expected = signer.signature(signer.string_to_sign(request, canonical), request)
        if not hmac.compare_digest(expected, signature):
            return "signature mismatch"
        return None

    def do_POST(self):
        length = int(self.headers.get("content-length", "0"))
        body = self.rfile.read(length)
        with LOCK:
            RECORDED.append({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}})
        why = self.check_signature(body)
        if why is not None:
            return self.deny(why)
        m = PATH_RE.match(self.path)
        if not m:
            return self.send_json(404, {"message": "UnknownOperationException"})
        model, action = unquote(m.group(1)), m.group(2)
        try:
            request = json.loads(body)
        except ValueError:
            return self.send_json(400, {"message": "Malformed input request"})
        if action in ("converse", "converse-stream") and not isinstance(request.get("messages"), list):
            return self.send_json(400, {"message": "messages is required"})
        cap = (request.get("inferenceConfig") or {}).get("maxTokens") or request.get("max_tokens") or 5
        words = ["Hello", "from", "mock", "bedrock", "again", "and", "again"][: min(cap, 7)]
        usage = {"inputTokens": input_words(request), "outputTokens": len(words)}
        usage["totalTokens"] = usage["inputTokens"] + usage["outputTokens"]
        if action == "converse":
            return self.send_json(
                200,
                {
                    "output": {"message": {"role": "assistant", "content": [{"text": " ".join(words)}]}},
                    "stopReason": "end_turn",
                    "usage": usage,
                    "metrics": {"latencyMs": 3},
                },
            )
        if action == "invoke":
            return self.send_json(
                200,
                {"type": "message", "content": [{"type": "text", "text": " ".join(words)}],
                 "usage": {"input_tokens": usage["inputTokens"], "output_tokens": usage["outputTokens"]}},
                [
                    ("x-amzn-bedrock-input-token-count", str(usage["inputTokens"])),
                    ("x-amzn-bedrock-output-token-count", str(usage["outputTokens"])),
                ],
            )
        if action == "converse-stream":
            frames = [event("messageStart", {"role": "assistant"})]
            for i, w in enumerate(words):
                frames.append(event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": (" " if i else "") + w}}))
            frames.append(event("contentBlockStop", {"contentBlockIndex": 0}))
            frames.append(event("messageStop", {"stopReason": "end_turn"}))
            if not model.endswith("-nousage"):
                frames.append(event("metadata", {"usage": usage, "metrics": {"latencyMs": 3}}))
        else:
            frames = []
            for w in words:
                chunk = {"type": "content_block_delta", "delta": {"type": "text_delta", "text": w}}
                frames.append(event("chunk", {"bytes": base64.b64encode(json.dumps(chunk).encode()).decode()}))
            last = {"type": "message_stop"}
            if not model.endswith("-nousage"):
                last["amazon-bedrock-invocationMetrics"] = {
                    "inputTokenCount": usage["inputTokens"],
                    "outputTokenCount": usage["outputTokens"],
                }
            frames.append(event("chunk", {"bytes": base64.b64encode(json.dumps(last).encode()).decode()}))
        data = b"".join(frames)
        cut = model.endswith("-cut")
        if cut:
            data = data[: len(data) - len(frames[-1]) // 2]
        self.send_response(200)
        self.send_header("content-type", "application/vnd.amazon.eventstream")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        pieces = [data[i : i + 1] for i in range(len(data))] if model.endswith("-bytewise") else [data]
        for piece in pieces:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.flush()
        if cut:
            # No terminating chunk: the upstream went away mid-stream.
            self.close_connection = True
            return
        self.wfile.write(b"0\r\n\r\n")


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(json.dumps({"port": server.server_address[1]}), flush=True)
    sys.stdin.read()


if __name__ == "__main__":
    main()
