"""Each JWT weakness the linter knows, made with pyjwt (by hand where pyjwt refuses),
reported by `writ lint jwt` and rejected at the token endpoint as a client assertion.

Run by tests/lint.rs with WRIT_BASE_URL, WRIT_BIN and WRIT_DIR set (a running gateway
whose data directory is WRIT_DIR).
"""
import base64
import hashlib
import hmac
import json
import os
import subprocess
import tempfile
import time
import uuid

import jwt
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

base = os.environ["WRIT_BASE_URL"]
writ_bin = os.environ["WRIT_BIN"]
workdir = os.environ["WRIT_DIR"]
token_url = f"{base}/oauth2/token"
AGENT = "jwt-agent"


def writ_cli(*args, check=True):
    out = subprocess.run([writ_bin, *args], cwd=workdir, capture_output=True, text=True)
    if check:
        assert out.returncode == 0, out.stderr
    return out


key = ec.generate_private_key(ec.SECP256R1())
public_pem = key.public_key().public_bytes(
    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
).decode()
with tempfile.NamedTemporaryFile("w", suffix=".pem", delete=False) as f:
    f.write(public_pem)
    public_file = f.name
ceiling = {"type": "writ:llm", "upstream": "demo"}
writ_cli("agent", "add", AGENT, "--ceiling", json.dumps(ceiling), "--public-key", public_file)
grants = json.dumps([{"type": "writ:llm", "upstream": "demo"}])


def claims(**changes):
    now = int(time.time())
    c = {"iss": AGENT, "sub": AGENT, "aud": token_url, "exp": now + 60, "iat": now, "jti": str(uuid.uuid4())}
    for k, v in changes.items():
        if v is None:
            c.pop(k, None)
        else:
            c[k] = v
    return c


def es256(payload, headers=None):
    return jwt.encode(payload, key, algorithm="ES256", headers=headers)


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hs256_by_hand(payload, secret):
    # pyjwt refuses a PEM public key as an HMAC secret (its guard against exactly this
    # attack), so the confusion token is built by hand.
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps(payload).encode())
    sig = hmac.new(secret.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(sig)}"


now = int(time.time())
samples = {
    "alg-none": jwt.encode(claims(), None, algorithm="none"),
    "weak-hmac-secret": jwt.encode(claims(), "secret", algorithm="HS256"),
    "alg-confusion": hs256_by_hand(claims(), public_pem),
    "missing-exp": es256(claims(exp=None)),
    "exp-too-far": es256(claims(exp=now + 3 * 86400)),
    "missing-iat": es256(claims(iat=None)),
    "iat-in-future": es256(claims(iat=now + 3600)),
    "nbf-in-future": es256(claims(nbf=now + 3600)),
    "kid-path-traversal": es256(claims(), headers={"kid": "../../../../etc/passwd"}),
    "kid-injection": es256(claims(), headers={"kid": "x' OR '1'='1"}),
    "jku-not-allowed": es256(claims(), headers={"jku": "https://attacker.example/jwks.json"}),
    "x5u-not-allowed": es256(claims(), headers={"x5u": "https://attacker.example/cert.pem"}),
    "embedded-jwk": es256(claims(), headers={"jwk": json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))}),
    "unknown-crit": es256(claims(), headers={"crit": ["urn:example:must-understand"], "urn:example:must-understand": True}),
    "oversized": es256(claims(padding="x" * 9000)),
}

for check, token in samples.items():
    # The CLI reports it (confusion needs the public key it would be confused with).
    args = ["lint", "jwt", "-"]
    if check == "alg-confusion":
        args += ["--public-key", public_file]
    out = subprocess.run([writ_bin, *args], cwd=workdir, input=token, capture_output=True, text=True)
    assert check in out.stdout, f"{check}: lint said\n{out.stdout}\n{out.stderr}"
    assert token not in out.stdout + out.stderr, f"{check}: token echoed"

    # The token endpoint refuses it as a client assertion, naming the weakness.
    r = requests.post(
        token_url,
        data={
            "grant_type": "client_credentials",
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": token,
            "authorization_details": grants,
        },
        timeout=10,
    )
    assert r.status_code == 401, f"{check}: {r.status_code} {r.text}"
    body = r.json()
    assert body["error"] == "invalid_client", f"{check}: {body}"
    assert check in body["error_description"], f"{check}: {body}"
    print(f"{check}: reported and rejected")

# A sound assertion from the same key still works: the linter refuses only weak ones.
good = es256(claims())
r = requests.post(
    token_url,
    data={
        "grant_type": "client_credentials",
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": good,
        "authorization_details": grants,
    },
    timeout=10,
)
assert r.status_code == 200, r.text
lint = subprocess.run([writ_bin, "lint", "jwt", "-"], cwd=workdir, input=good, capture_output=True, text=True)
assert lint.returncode == 0, lint.stdout
print(f"jwt weaknesses: ok ({len(samples)} samples)")
