"""An agent using MCP's official Python SDK through writ, exactly as it would use any
OAuth-protected MCP server: the SDK's own `PrivateKeyJWTOAuthProvider` (client
credentials, `private_key_jwt`) discovers the authorization server from the 401, gets a
token, and the `Client` talks to `/mcp/flights`. Nothing here knows about writ.

Environment: `MCP_URL` (the gateway's `/mcp/flights`), `MCP_ISSUER` (the authorization
server the agent is registered with), `MCP_CLIENT_ID`, `MCP_KEY_FILE` (its private key,
PEM, P-256) or `MCP_CLIENT_SECRET` (then the SDK's `ClientCredentialsOAuthProvider`
with the secret in HTTP Basic), `MCP_MODE` (`auto`: the 2026-07-28 `server/discover`
probe; `legacy`: the `initialize` handshake and `Mcp-Session-Id`).

Test plumbing only: an httpx event hook notes each HTTP exchange (method, path, status,
the MCP headers, the names of the token request's form fields and its `resource`), the
access tokens the SDK stored are written to `MCP_TOKENS_FILE` so the test can look for
them at the MCP server, and one JSON line on stdout says what happened.
"""

import asyncio
import json
import os
from urllib.parse import parse_qs, urlparse

import httpx2
from mcp import Client
from mcp.client.auth.extensions.client_credentials import (
    ClientCredentialsOAuthProvider,
    PrivateKeyJWTOAuthProvider,
    SignedJWTParameters,
)
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import OAuthClientInformationFull, OAuthToken
from mcp.shared.exceptions import MCPError

URL = os.environ["MCP_URL"]
ISSUER = os.environ["MCP_ISSUER"]
CLIENT_ID = os.environ["MCP_CLIENT_ID"]
MODE = os.environ.get("MCP_MODE", "auto")
MCP_HEADERS = ("mcp-protocol-version", "mcp-method", "mcp-name", "mcp-session-id", "origin", "accept")


class MemoryTokenStorage:
    """The SDK's `TokenStorage`, in memory; remembers every token it was given."""

    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.issued: list[OAuthToken] = []
        self.client_info: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens
        self.issued.append(tokens)

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client_info

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client_info = client_info


WIRE: list[dict] = []
# The entry of each request awaiting its response, by the request object's identity: the
# legacy era's GET stream runs beside the POSTs, so responses do not arrive in order.
PENDING: dict[int, dict] = {}


async def note_request(request) -> None:
    entry = {"method": request.method, "path": urlparse(str(request.url)).path}
    entry.update({h: request.headers[h] for h in MCP_HEADERS if h in request.headers})
    entry["bearer"] = request.headers.get("authorization", "").startswith("Bearer ")
    entry["basic"] = request.headers.get("authorization", "").startswith("Basic ")
    if request.headers.get("content-type") == "application/x-www-form-urlencoded":
        form = parse_qs(request.content.decode())
        entry["form_fields"] = sorted(form)
        entry["resource"] = form.get("resource", [None])[0]
        entry["scope"] = form.get("scope", [None])[0]
    elif request.content:
        entry["jsonrpc_method"] = json.loads(request.content).get("method")
    WIRE.append(entry)
    PENDING[id(request)] = entry


async def note_response(response) -> None:
    entry = PENDING.pop(id(response.request), None)
    if entry is None:
        return
    entry["status"] = response.status_code
    entry["content_type"] = response.headers.get("content-type", "")
    if "www-authenticate" in response.headers:
        entry["www_authenticate"] = response.headers["www-authenticate"]


async def call(client: Client, tool: str, arguments: dict) -> dict:
    """A tool call's outcome: its text, or the JSON-RPC error the SDK raised."""
    try:
        result = await client.call_tool(tool, arguments)
    except MCPError as e:
        return {"tool": tool, "error": {"code": e.error.code, "message": e.error.message, "data": e.error.data}}
    text = [c.text for c in result.content if getattr(c, "type", None) == "text"]
    return {"tool": tool, "is_error": result.is_error, "text": text}


def oauth(storage: MemoryTokenStorage):
    """The SDK's own OAuth client for client credentials: authenticated by a JWT it signs
    with the agent's key, or (`MCP_CLIENT_SECRET` set) by the client secret in HTTP Basic."""
    if "MCP_CLIENT_SECRET" in os.environ:
        return ClientCredentialsOAuthProvider(
            server_url=URL,
            storage=storage,
            client_id=CLIENT_ID,
            client_secret=os.environ["MCP_CLIENT_SECRET"],
            issuer=ISSUER,
        )
    with open(os.environ["MCP_KEY_FILE"]) as f:
        private_key = f.read()
    return PrivateKeyJWTOAuthProvider(
        server_url=URL,
        storage=storage,
        client_id=CLIENT_ID,
        assertion_provider=SignedJWTParameters(
            issuer=CLIENT_ID,
            subject=CLIENT_ID,
            signing_key=private_key,
            signing_algorithm="ES256",
        ).create_assertion_provider(),
        issuer=ISSUER,
    )


async def main() -> None:
    storage = MemoryTokenStorage()
    auth = oauth(storage)
    http = httpx2.AsyncClient(auth=auth, event_hooks={"request": [note_request], "response": [note_response]})
    outcome: dict = {"mode": MODE}
    async with http, Client(streamable_http_client(URL, http_client=http), mode=MODE) as client:
        outcome["protocol_version"] = client.protocol_version
        listed = await client.list_tools()
        outcome["tools"] = [t.name for t in listed.tools]
        outcome["calls"] = [
            await call(client, "book_flight", {"flight": "LH123", "date": "2026-12-01"}),
            await call(client, "book_flight", {"flight": "LH456", "date": "2026-12-01"}),
            await call(client, "book_flight", {"flight": "LH123", "date": "2026-12-02"}),
            await call(client, "cancel_flight", {"booking": "BK-LH123-2026-12-01"}),
        ]
    outcome["wire"] = WIRE
    outcome["tokens_issued"] = len(storage.issued)
    outcome["token_types"] = sorted({t.token_type for t in storage.issued})
    with open(os.environ["MCP_TOKENS_FILE"], "w") as f:
        json.dump([t.access_token for t in storage.issued], f)
    print(json.dumps(outcome))


asyncio.run(main())
