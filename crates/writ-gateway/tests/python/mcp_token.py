"""MCP's official Python SDK gets a writ with its own client-credentials code and no
writ-specific code: `PrivateKeyJWTOAuthProvider` as the HTTP client's auth, a `tools/call`
to `/mcp/travel` that is refused (401), then discovery, the token request and the retry,
all the SDK's. Prints one JSON line: what the SDK sent to the token endpoint (the
assertion's claims, never the assertion), what it was answered (never the writ), how the
call ended, and how the same writ fares at another MCP endpoint."""

import asyncio
import json
import os
from urllib.parse import parse_qs

import httpx2
import jwt
from mcp.client.auth.extensions.client_credentials import (
    PrivateKeyJWTOAuthProvider,
    SignedJWTParameters,
)

BASE = os.environ["WRIT_BASE_URL"]
CLIENT_ID = os.environ["WRIT_CLIENT_ID"]
CLIENT_KEY = os.environ["WRIT_CLIENT_KEY"]


class MemoryStorage:
    def __init__(self):
        self.tokens = None
        self.client_info = None

    async def get_tokens(self):
        return self.tokens

    async def set_tokens(self, tokens):
        self.tokens = tokens

    async def get_client_info(self):
        return self.client_info

    async def set_client_info(self, client_info):
        self.client_info = client_info


def call(tool, arguments):
    return {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": tool, "arguments": arguments},
    }


async def main() -> None:
    storage = MemoryStorage()
    provider = PrivateKeyJWTOAuthProvider(
        server_url=f"{BASE}/mcp/travel",
        storage=storage,
        client_id=CLIENT_ID,
        assertion_provider=SignedJWTParameters(
            issuer=CLIENT_ID,
            subject=CLIENT_ID,
            signing_key=CLIENT_KEY,
            signing_algorithm="ES256",
            lifetime_seconds=60,
        ).create_assertion_provider(),
        issuer=BASE,
    )
    sent = []
    answered = []

    async def on_request(request):
        if request.url.path == "/oauth2/token":
            form = {k: v for k, v in parse_qs(request.content.decode(), keep_blank_values=True).items()}
            assertion = form.pop("client_assertion", [""])[0]
            claims = jwt.decode(assertion, options={"verify_signature": False})
            sent.append({"form": form, "assertion_aud": claims.get("aud")})

    async def on_response(response):
        if response.request.url.path == "/oauth2/token":
            body = json.loads(await response.aread())
            body.pop("access_token", None)
            answered.append({"status": response.status_code, "body": body})

    headers = {"Accept": "application/json, text/event-stream"}
    async with httpx2.AsyncClient(
        auth=provider,
        event_hooks={"request": [on_request], "response": [on_response]},
    ) as client:
        booked = await client.post(
            f"{BASE}/mcp/travel", json=call("book_flight", {"flight": "LH123"}), headers=headers
        )
    writ = storage.tokens.access_token if storage.tokens else ""
    async with httpx2.AsyncClient() as plain:
        elsewhere = await plain.post(
            f"{BASE}/mcp/hotels",
            json=call("book_room", {"flight": "LH123"}),
            headers={**headers, "Authorization": f"Bearer {writ}"},
        )
    print(
        json.dumps(
            {
                "token_requests": sent,
                "token_answers": answered,
                "booked_status": booked.status_code,
                "booked": booked.json(),
                "elsewhere_status": elsewhere.status_code,
                "elsewhere_code": elsewhere.json().get("error", {}).get("data", {}).get("code"),
            }
        )
    )


asyncio.run(main())
