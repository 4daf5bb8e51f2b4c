"""writ-agent: call LLMs through a writ gateway without handling writs.

`WritAuth` is an `httpx.Auth` that mints, reuses, renews and (on `expired_writ`) replaces
writs; `openai_client`, `async_openai_client` and `anthropic_client` return the official SDK
clients with it in place.
"""

from ._auth import Stats, Writ, WritAuth
from ._errors import InvalidKeyError, TokenEndpointError, TokenEndpointUnreachable, WritError
from ._keys import DpopKey
from ._sdk import anthropic_client, async_openai_client, openai_client

__all__ = [
    "DpopKey",
    "InvalidKeyError",
    "Stats",
    "TokenEndpointError",
    "TokenEndpointUnreachable",
    "Writ",
    "WritAuth",
    "WritError",
    "anthropic_client",
    "async_openai_client",
    "openai_client",
]
