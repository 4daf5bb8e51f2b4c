"""Libraries no one here wrote, against a running writ gateway.

- authlib gets a writ from /oauth2/token with private_key_jwt (ES256) and the writ works.
- biscuit-python attenuates that writ with the published root public key, and the
  gateway enforces the new block exactly as it enforces one appended by `writ token attenuate`.

Run by tests/interop.rs with WRIT_BASE_URL, WRIT_BIN and WRIT_DIR set.
"""
import json
import os
import subprocess
import tempfile

import requests
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc7523 import PrivateKeyJWT
from biscuit_auth import Algorithm, Biscuit, BlockBuilder, PublicKey
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from joserfc.jwk import ECKey

base = os.environ["WRIT_BASE_URL"]
writ_bin = os.environ["WRIT_BIN"]
workdir = os.environ["WRIT_DIR"]
token_url = f"{base}/oauth2/token"


def writ_cli(*args):
    out = subprocess.run([writ_bin, *args], cwd=workdir, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


# Register an agent with a P-256 key made here.
key = ec.generate_private_key(ec.SECP256R1())
private_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
with tempfile.NamedTemporaryFile("w", suffix=".pem", delete=False) as f:
    f.write(key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode())
ceiling = {"type": "writ:llm", "upstream": "demo", "models": ["gpt-4o-mini", "gpt-4o"]}
writ_cli("agent", "add", "py-agent", "--ceiling", json.dumps(ceiling), "--public-key", f.name)

# authlib: client_credentials with private_key_jwt.
session = OAuth2Session(
    client_id="py-agent",
    # authlib reads a PEM string as RSA; an EC key goes in as a key object.
    client_secret=ECKey.import_key(private_pem),
    token_endpoint_auth_method=PrivateKeyJWT(token_url, alg="ES256"),
)
grants = [{"type": "writ:llm", "upstream": "demo", "actions": ["chat"], "models": ["gpt-4o-mini", "gpt-4o"]}]
token = session.fetch_token(token_url, grant_type="client_credentials", authorization_details=json.dumps(grants))
writ = token["access_token"]
assert writ.startswith("writ_"), token
assert token["token_type"] == "Bearer" and 0 < token["expires_in"] <= 30, token


def chat(w, model):
    r = requests.post(
        f"{base}/v1/chat/completions",
        headers={"Authorization": f"Bearer {w}"},
        json={"model": model, "messages": [{"role": "user", "content": "hi"}]},
        timeout=10,
    )
    return r.status_code, r.json()


assert chat(writ, "gpt-4o")[0] == 200
assert chat(writ, "gpt-4o-mini")[0] == 200

# authlib refused: the same assertion twice is a replay (authlib makes a new jti per call,
# so replay it by hand).
bad = requests.post(token_url, data={"grant_type": "client_credentials", "client_id": "py-agent", "client_secret": "nope", "authorization_details": json.dumps(grants)}, timeout=10)
assert bad.status_code == 401 and bad.json()["error"] == "invalid_client", bad.text

# biscuit-python: attenuate with the published root key.
published = requests.get(f"{base}/.well-known/writ-keys", timeout=10).json()
roots = {k["kid"]: PublicKey.from_bytes(bytes.fromhex(k["public_key"]), Algorithm.Ed25519) for k in published["keys"]}
token_obj = Biscuit.from_base64(writ[len("writ_"):], lambda kid: roots[kid])
narrowed = token_obj.append(BlockBuilder('check if model("gpt-4o-mini"), operation("chat");'))
by_python = "writ_" + narrowed.to_base64()
by_cli = writ_cli("token", "attenuate", writ, "--grant", json.dumps({"type": "writ:llm", "upstream": "demo", "actions": ["chat"], "models": ["gpt-4o-mini"]}))

for narrowed_writ in (by_python, by_cli):
    ok_status, _ = chat(narrowed_writ, "gpt-4o-mini")
    denied_status, denied = chat(narrowed_writ, "gpt-4o")
    assert ok_status == 200, ok_status
    assert denied_status == 403 and denied["error"]["code"] == "grant_denied", denied
    assert "block 2 (attenuation)" in denied["error"]["detail"], denied
assert "a holder narrowed this writ" in denied["error"]["message"], denied

# A block biscuit-python signed with a key that is not the holder's next key is refused.
forged = by_python[:-12] + ("A" if by_python[-12] != "A" else "B") + by_python[-11:]
status, body = chat(forged, "gpt-4o-mini")
assert status == 401, (status, body)

print("interop: ok")
