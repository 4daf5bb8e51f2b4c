"""A mock of Google's OAuth token endpoint and Vertex AI that check what Google checks.

The token endpoint takes only a JWT-bearer grant whose assertion verifies (RS256) against
the public key of the service account it made, names that account as issuer and the
token URI as audience, asks for the cloud-platform scope, and lives at most an hour.
Vertex answers only requests bearing a token it issued.

Prints one JSON line: the port, the service-account key file, and an impostor key file
(same account, another key), then serves until stdin closes.
Environment: MOCK_PROJECT, MOCK_TOKEN_TTL (seconds, default 3599).
"""

import json
import os
import re
import secrets
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from joserfc import jwt
from joserfc.jwk import RSAKey
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

PROJECT = os.environ.get("MOCK_PROJECT", "writ-test-project")
TTL = int(os.environ.get("MOCK_TOKEN_TTL", "3599"))
EMAIL = f"writ-gateway@{PROJECT}.iam.gserviceaccount.com"
KEY_ID = secrets.token_hex(20)
SCOPE = "https://www.googleapis.com/auth/cloud-platform"
PATH_RE = re.compile(
    r"^/(v1|v1beta1)/projects/([^/]+)/locations/([^/]+)/publishers/google/models/([^/:]+):(generateContent|streamGenerateContent)$"
)

LOCK = threading.Lock()
ISSUED = set()
LOG = {"token_requests": 0, "token_refusals": 0, "calls": []}


def new_key():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return pem, public


PRIVATE_PEM, PUBLIC_PEM = new_key()
IMPOSTOR_PEM, _ = new_key()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def send_json(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        with LOCK:
            self.send_json(200, LOG)

    def refuse_grant(self, why):
        with LOCK:
            LOG["token_refusals"] += 1
        self.send_json(400, {"error": "invalid_grant", "error_description": why})

    def token(self, body):
        with LOCK:
            LOG["token_requests"] += 1
        if self.headers.get("content-type") != "application/x-www-form-urlencoded":
            return self.refuse_grant("form body expected")
        form = parse_qs(body.decode(), strict_parsing=True)
        if form.get("grant_type") != ["urn:ietf:params:oauth:grant-type:jwt-bearer"]:
            return self.refuse_grant("unsupported grant_type")
        assertion = form.get("assertion", [""])[0]
        try:
            decoded = jwt.decode(assertion, RSAKey.import_key(PUBLIC_PEM), algorithms=["RS256"])
        except Exception as e:  # a bad signature or a malformed token
            return self.refuse_grant(f"Invalid JWT Signature. ({type(e).__name__})")
        claims = decoded.claims
        if decoded.header.get("kid") != KEY_ID or decoded.header.get("alg") != "RS256":
            return self.refuse_grant("unknown key id")
        token_uri = f"http://{self.headers['host']}/token"
        now = time.time()
        checks = [
            (claims.get("iss") == EMAIL, "wrong issuer"),
            (claims.get("aud") == token_uri, "wrong audience"),
            (SCOPE in str(claims.get("scope", "")).split(), "missing scope"),
            (isinstance(claims.get("iat"), int) and isinstance(claims.get("exp"), int), "iat/exp"),
        ]
        for ok, why in checks:
            if not ok:
                return self.refuse_grant(why)
        if claims["exp"] - claims["iat"] > 3600 or claims["exp"] <= now:
            return self.refuse_grant("Invalid JWT: Token must be a short-lived token")
        token = "ya29." + secrets.token_urlsafe(32)
        with LOCK:
            ISSUED.add(token)
        self.send_json(200, {"access_token": token, "expires_in": TTL, "token_type": "Bearer"})

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        url = urlsplit(self.path)
        if url.path == "/token":
            return self.token(body)
        auth = self.headers.get("authorization", "")
        with LOCK:
            LOG["calls"].append({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}})
            known = auth.startswith("Bearer ") and auth[len("Bearer "):] in ISSUED
        if not known or self.headers.get("x-goog-api-key"):
            return self.send_json(401, {"error": {"code": 401, "status": "UNAUTHENTICATED",
                                                  "message": "Request had invalid authentication credentials."}})
        m = PATH_RE.match(url.path)
        if not m:
            return self.send_json(404, {"error": {"code": 404, "status": "NOT_FOUND", "message": url.path}})
        model, action = m.group(4), m.group(5)
        request = json.loads(body)
        words = sum(len(p.get("text", "").split()) for c in request.get("contents", []) for p in c.get("parts", []))
        cap = (request.get("generationConfig") or {}).get("maxOutputTokens") or 4
        out = ["Hello", "from", "mock", "vertex", "once", "more"][: min(cap, 6)]
        usage = {"promptTokenCount": max(words, 1), "candidatesTokenCount": len(out)}
        usage["totalTokenCount"] = usage["promptTokenCount"] + usage["candidatesTokenCount"]

        def candidate(text):
            return {"content": {"role": "model", "parts": [{"text": text}]}}

        if action == "generateContent":
            return self.send_json(200, {"candidates": [dict(candidate(" ".join(out)), finishReason="STOP")],
                                        "usageMetadata": usage, "modelVersion": model})
        events = []
        for i, w in enumerate(out):
            chunk = {"candidates": [candidate((" " if i else "") + w)], "modelVersion": model}
            if i == len(out) - 1:
                chunk["candidates"][0]["finishReason"] = "STOP"
                chunk["usageMetadata"] = usage
            events.append(b"data: " + json.dumps(chunk).encode() + b"\r\n\r\n")
        data = b"".join(events)
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def key_file(pem, port):
    return {
        "type": "service_account",
        "project_id": PROJECT,
        "private_key_id": KEY_ID,
        "private_key": pem,
        "client_email": EMAIL,
        "client_id": "1" * 21,
        "token_uri": f"http://127.0.0.1:{port}/token",
    }


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    print(json.dumps({"port": port, "service_account": key_file(PRIVATE_PEM, port),
                      "impostor": key_file(IMPOSTOR_PEM, port)}), flush=True)
    sys.stdin.read()


if __name__ == "__main__":
    main()
