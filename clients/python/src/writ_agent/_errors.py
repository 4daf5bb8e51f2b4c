"""The ways getting a writ fails, each saying what to do next."""

from __future__ import annotations

_HINTS = {
    "invalid_client": " (check the client id and that the key signing the assertion is registered: `writ agent show <id>`)",
    "invalid_authorization_details": " (ask only for grants within the agent's ceiling: `writ agent show <id>`)",
}


def _hint(error: str, description: str | None) -> str:
    """What to do next: a revoked agent is the operator's to lift, not a key problem."""
    if error == "invalid_client" and "revoked" in (description or ""):
        return " (an operator revoked this agent or its tenant: `writ revoke --list` shows it, `writ revoke --lift ID` lifts it)"
    return _HINTS.get(error, "")


class WritError(Exception):
    """Base class of writ-agent's errors."""


class InvalidKeyError(WritError, ValueError):
    """The private key is not an unencrypted PEM Ed25519 or P-256 private key."""


class TokenEndpointError(WritError):
    """The token endpoint refused to mint a writ (an OAuth error, RFC 6749 §5.2)."""

    def __init__(self, url: str, status: int, error: str, description: str | None):
        self.url = url
        self.status = status
        self.error = error
        self.description = description
        detail = f": {description}" if description else ""
        super().__init__(
            f"the token endpoint {url} refused to mint a writ ({status}): {error}{detail}{_hint(error, description)}"
        )


class TokenEndpointUnreachable(WritError):
    """The token endpoint could not be reached (DNS, connect, TLS, timeout)."""

    def __init__(self, url: str, cause: Exception):
        self.url = url
        super().__init__(
            f"the token endpoint {url} is unreachable: {cause!r}; check the URL and that the gateway runs"
        )
