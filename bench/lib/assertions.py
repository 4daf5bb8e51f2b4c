"""Writes client assertions (RFC 7523, EdDSA) for the JIT row, one form field a line.

Usage: assertions.py KEY_PEM TOKEN_URL AGENTS COUNT LIFETIME_SECS JTI_PREFIX OUT_FILE

Each line is `client_assertion=<JWT>`, the JWT signed with KEY_PEM (Ed25519, PKCS#8 PEM)
for the agents named in AGENTS (comma-separated) in turn: iss = sub = the agent, aud =
TOKEN_URL, iat now, exp LIFETIME_SECS later, jti JTI_PREFIX-<line number> (unique as long
as the prefix is). Signed with `cryptography` directly: PyJWT's encode costs several times
the signature, and a load at 15 000 mints/s needs assertions faster than it can make them.
"""

import base64
import json
import sys
import time

from cryptography.hazmat.primitives import serialization


def b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def main() -> None:
    key_path, token_url, agents, count, lifetime, prefix, out = sys.argv[1:8]
    key = serialization.load_pem_private_key(open(key_path, "rb").read(), password=None)
    agents = agents.split(",")
    now = int(time.time())
    header = b64(b'{"alg":"EdDSA","typ":"JWT"}')
    with open(out, "wb") as f:
        for i in range(int(count)):
            agent = agents[i % len(agents)]
            claims = json.dumps({"iss": agent, "sub": agent, "aud": token_url, "iat": now,
                                 "exp": now + int(lifetime), "jti": f"{prefix}-{i}"},
                                separators=(",", ":")).encode()
            signing_input = header + b"." + b64(claims)
            f.write(b"client_assertion=" + signing_input + b"." + b64(key.sign(signing_input)) + b"\n")


if __name__ == "__main__":
    main()
