"""Mint many writs through a gateway's token endpoint (client_credentials, private_key_jwt).

Usage: mint.py URL KEY_PEM AGENTS COUNT TTL_SECS OUT_FILE

URL is the gateway (http://127.0.0.1:PORT); KEY_PEM the Ed25519 private key every agent
named in AGENTS (comma-separated) was registered with. Writs are requested in turn for
each agent, 32 requests in flight, and written to OUT_FILE one a line. Exits non-zero if
any request is refused.
"""

import asyncio
import json
import sys
import time
import uuid

import aiohttp
import jwt

GRANTS = json.dumps(
    [
        {"type": "writ:llm", "upstream": "mock", "actions": ["chat"], "models": ["gpt-4o-mini"]},
        {"type": "writ:llm", "upstream": "mockstream", "actions": ["chat"], "models": ["gpt-4o-mini"]},
    ]
)
ASSERTION = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


async def main() -> None:
    url, key_path, agents, count, ttl, out = sys.argv[1:7]
    agents = agents.split(",")
    count = int(count)
    key = open(key_path, "rb").read()
    token_url = f"{url}/oauth2/token"
    writs: list = [None] * count
    next_index = 0

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal next_index
        while next_index < count:
            i = next_index
            next_index += 1
            agent = agents[i % len(agents)]
            now = int(time.time())
            assertion = jwt.encode(
                {"iss": agent, "sub": agent, "aud": token_url, "iat": now, "exp": now + 5,
                 "jti": uuid.uuid4().hex},
                key,
                algorithm="EdDSA",
            )
            form = {
                "grant_type": "client_credentials",
                "client_assertion_type": ASSERTION,
                "client_assertion": assertion,
                "authorization_details": GRANTS,
                "expires_in": ttl,
            }
            async with session.post(token_url, data=form) as resp:
                body = await resp.text()
                if resp.status != 200:
                    raise SystemExit(f"token endpoint answered {resp.status}: {body[:300]}")
                writs[i] = json.loads(body)["access_token"]

    conn = aiohttp.TCPConnector(limit=32)
    async with aiohttp.ClientSession(connector=conn) as session:
        await asyncio.gather(*(worker(session) for _ in range(32)))
    with open(out, "w") as f:
        f.write("\n".join(writs) + "\n")


if __name__ == "__main__":
    asyncio.run(main())
