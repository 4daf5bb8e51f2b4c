"""Official SDK clients whose every request carries a current writ.

Each factory builds a `WritAuth`, mints the first writ right away (so a wrong key, an
unreachable gateway or grants beyond the agent's ceiling fail here, with the token
endpoint's answer, rather than at the first call), and hands the SDK an httpx client with
the auth in place. The SDK's own api_key is a placeholder the auth replaces.
"""

from __future__ import annotations

from typing import Any


from ._auth import WritAuth

_PLACEHOLDER_KEY = "writ-agent-replaces-this"


def _auth(gateway: str, client_id: str, auth_kwargs: dict[str, Any]) -> WritAuth:
    token_url = auth_kwargs.pop("token_url", None) or f"{gateway.rstrip('/')}/oauth2/token"
    auth = WritAuth(token_url, client_id, **auth_kwargs)
    auth.writ()
    return auth


def openai_client(
    gateway: str,
    client_id: str,
    *,
    grants,
    private_key: str | bytes | None = None,
    client_secret: str | None = None,
    openai_kwargs: dict[str, Any] | None = None,
    **auth_kwargs: Any,
):
    """An `openai.OpenAI` for the gateway at `gateway` (e.g. `http://127.0.0.1:8787`).

    `grants`, `private_key` / `client_secret` and any other keyword (`dpop`, `expires_in`,
    `renew_before`, `token_url`, `verify`, …) go to `WritAuth`; `openai_kwargs` to the SDK.
    `client.writ_auth` is the `WritAuth` (for `stats`).
    """
    import openai

    auth = _auth(gateway, client_id, dict(auth_kwargs, grants=grants, private_key=private_key, client_secret=client_secret))
    verify = auth_kwargs.get("verify", True)
    client = openai.OpenAI(
        base_url=f"{gateway.rstrip('/')}/v1",
        api_key=_PLACEHOLDER_KEY,
        http_client=openai.DefaultHttpxClient(auth=auth, verify=verify),
        **(openai_kwargs or {}),
    )
    client.writ_auth = auth
    return client


def anthropic_client(
    gateway: str,
    client_id: str,
    *,
    grants,
    private_key: str | bytes | None = None,
    client_secret: str | None = None,
    anthropic_kwargs: dict[str, Any] | None = None,
    **auth_kwargs: Any,
):
    """An `anthropic.Anthropic` for the gateway at `gateway`; arguments as `openai_client`."""
    import anthropic

    auth = _auth(gateway, client_id, dict(auth_kwargs, grants=grants, private_key=private_key, client_secret=client_secret))
    verify = auth_kwargs.get("verify", True)
    client = anthropic.Anthropic(
        base_url=gateway.rstrip("/"),
        api_key=_PLACEHOLDER_KEY,
        http_client=anthropic.DefaultHttpxClient(auth=auth, verify=verify),
        **(anthropic_kwargs or {}),
    )
    client.writ_auth = auth
    return client


def async_openai_client(
    gateway: str,
    client_id: str,
    *,
    grants,
    private_key: str | bytes | None = None,
    client_secret: str | None = None,
    openai_kwargs: dict[str, Any] | None = None,
    **auth_kwargs: Any,
):
    """An `openai.AsyncOpenAI`; arguments as `openai_client`."""
    import openai

    auth = _auth(gateway, client_id, dict(auth_kwargs, grants=grants, private_key=private_key, client_secret=client_secret))
    verify = auth_kwargs.get("verify", True)
    client = openai.AsyncOpenAI(
        base_url=f"{gateway.rstrip('/')}/v1",
        api_key=_PLACEHOLDER_KEY,
        http_client=openai.DefaultAsyncHttpxClient(auth=auth, verify=verify),
        **(openai_kwargs or {}),
    )
    client.writ_auth = auth
    return client


__all__ = ["openai_client", "anthropic_client", "async_openai_client"]
