"""`WritAuth`: an `httpx.Auth` that puts a current writ on every request.

It mints writs at the gateway's token endpoint (`client_credentials`; `private_key_jwt`
or a client secret; the grants asked for as RFC 9396 `authorization_details`), reuses one
until shortly before it expires, and sends a request once more with a fresh writ when the
gateway answers `401 expired_writ`. One mint is in flight at a time, across threads (sync
clients) and across tasks (async clients).

Inside an httpx client the token request goes through that client, so a refusal (wrong
key, grants beyond the ceiling) is the response the caller gets: an SDK raises its own
typed error with the token endpoint's answer in it.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable

import httpx

from ._errors import TokenEndpointError, TokenEndpointUnreachable
from ._keys import ASSERTION_TYPE, AssertionSigner, DpopKey

try:  # The official SDKs moved to httpx2, pydantic's continuation of httpx: serve both.
    import httpx2

    _AUTH_BASES: tuple[type, ...] = (httpx.Auth, httpx2.Auth)
except ImportError:  # pragma: no cover - httpx2 comes with the SDKs, not with this package
    _AUTH_BASES = (httpx.Auth,)

# Headers an SDK puts its (placeholder) key in; the gateway reads the first it finds, so
# only the writ, in Authorization, is left.
_CREDENTIAL_HEADERS = ("x-api-key", "api-key", "x-goog-api-key")


@dataclass(frozen=True)
class Writ:
    """A writ the token endpoint issued. Its repr shows no token."""

    token: str
    dpop_bound: bool
    minted_at: float
    expires_at: float

    def __repr__(self) -> str:
        return f"Writ(dpop_bound={self.dpop_bound}, expires_at={self.expires_at})"

    def stale(self, now: float, renew_before: float) -> bool:
        """Whether to replace it at `now`: `renew_before` seconds before it expires, or
        half way through its life when that is sooner (so a short writ is still reused)."""
        margin = min(renew_before, (self.expires_at - self.minted_at) / 2)
        return now + margin >= self.expires_at


@dataclass
class Stats:
    """What a `WritAuth` did: writs minted, and requests sent again after `expired_writ`."""

    mints: int = 0
    expired_retries: int = 0


class WritAuth(*_AUTH_BASES):
    """Authenticates httpx (and httpx2) requests to a writ gateway with a writ minted for
    them."""

    def __init__(
        self,
        token_url: str,
        client_id: str,
        *,
        grants: Iterable[dict[str, Any]],
        private_key: str | bytes | None = None,
        client_secret: str | None = None,
        dpop: bool | DpopKey = False,
        expires_in: int | None = None,
        renew_before: float = 5.0,
        clock: Callable[[], float] = time.time,
        verify: Any = True,
        timeout: float = 10.0,
    ):
        """
        token_url: the gateway's `/oauth2/token`.
        client_id: the agent (`name`, or `tenant/name`).
        grants: the grants to ask for, sent as `authorization_details`.
        private_key: PEM Ed25519 or P-256 private key whose public half is registered
            (`writ agent add --public-key`); or client_secret: the agent's secret.
        dpop: True binds every writ to a fresh key (or pass a `DpopKey`).
        expires_in: seconds each writ should live (the gateway caps it).
        renew_before: seconds before expiry a writ is replaced (at most half its life).
        clock: the time, as `time.time` gives it.
        verify, timeout: for the token requests `writ()` makes with its own client.
        """
        if (private_key is None) == (client_secret is None):
            raise ValueError("pass exactly one of private_key and client_secret")
        grants = list(grants)
        if not grants or not all(isinstance(g, dict) for g in grants):
            raise ValueError("grants must be a non-empty list of grant objects (RFC 9396 authorization_details)")
        if expires_in is not None and expires_in < 1:
            raise ValueError("expires_in must be at least 1 second")
        self.token_url = token_url
        self.client_id = client_id
        self._details = json.dumps(grants, separators=(",", ":"))
        self._signer = AssertionSigner(private_key) if private_key is not None else None
        self._secret = client_secret
        self._dpop = DpopKey() if dpop is True else (dpop or None)
        self._expires_in = expires_in
        self._renew_before = renew_before
        self._clock = clock
        self._verify = verify
        self._timeout = timeout
        self._current: Writ | None = None
        self._thread_lock = threading.Lock()
        self._task_lock: asyncio.Lock | None = None
        self._stats_lock = threading.Lock()
        self._stats = Stats()

    def __repr__(self) -> str:
        return f"WritAuth({self.token_url!r}, {self.client_id!r}, dpop={self._dpop is not None})"

    @property
    def stats(self) -> Stats:
        """A copy of the counters."""
        with self._stats_lock:
            return Stats(self._stats.mints, self._stats.expired_retries)

    # -- outside httpx flows --------------------------------------------------------------

    def writ(self) -> Writ:
        """The current writ, minted now with a client of its own when needed. Raises
        `TokenEndpointError` or `TokenEndpointUnreachable`."""
        with self._thread_lock:
            fresh = self._fresh()
            if fresh is not None:
                return fresh
            request, asked_at = self._token_request(httpx.Request)
            try:
                with httpx.Client(verify=self._verify, timeout=self._timeout) as client:
                    response = client.send(request)
            except httpx.TransportError as err:
                raise TokenEndpointUnreachable(self.token_url, err) from err
            outcome = self._accept(response, asked_at)
            if isinstance(outcome, TokenEndpointError):
                raise outcome
            return outcome

    # -- httpx flows ----------------------------------------------------------------------

    def sync_auth_flow(self, request: httpx.Request):
        request.read()  # so the request can be sent again
        writ = self._fresh()
        if writ is None:
            with self._thread_lock:
                writ = self._fresh()
                if writ is None:
                    token_request, asked_at = self._token_request(type(request))
                    response = yield token_request
                    response.read()
                    writ = self._accept(response, asked_at)
                    if isinstance(writ, TokenEndpointError):
                        return  # the refusal is the answer
        self._apply(request, writ)
        response = yield request
        if response.status_code != 401:
            return
        response.read()
        if not _names_expired_writ(response):
            return
        self._count_retry()
        with self._thread_lock:
            fresh = self._fresh()
            if fresh is None or fresh is writ:
                token_request, asked_at = self._token_request(type(request))
                response = yield token_request
                response.read()
                fresh = self._accept(response, asked_at)
                if isinstance(fresh, TokenEndpointError):
                    return
        self._apply(request, fresh)
        yield request

    async def async_auth_flow(self, request: httpx.Request):
        await request.aread()
        if self._task_lock is None:
            self._task_lock = asyncio.Lock()
        writ = self._fresh()
        if writ is None:
            async with self._task_lock:
                writ = self._fresh()
                if writ is None:
                    token_request, asked_at = self._token_request(type(request))
                    response = yield token_request
                    await response.aread()
                    writ = self._accept(response, asked_at)
                    if isinstance(writ, TokenEndpointError):
                        return
        self._apply(request, writ)
        response = yield request
        if response.status_code != 401:
            return
        await response.aread()
        if not _names_expired_writ(response):
            return
        self._count_retry()
        async with self._task_lock:
            fresh = self._fresh()
            if fresh is None or fresh is writ:
                token_request, asked_at = self._token_request(type(request))
                response = yield token_request
                await response.aread()
                fresh = self._accept(response, asked_at)
                if isinstance(fresh, TokenEndpointError):
                    return
        self._apply(request, fresh)
        yield request

    # -- shared ---------------------------------------------------------------------------

    def _fresh(self) -> Writ | None:
        current = self._current
        if current is None or current.stale(self._clock(), self._renew_before):
            return None
        return current

    def _token_request(self, request_type: type) -> tuple[httpx.Request, float]:
        """The token request, built as the client's own request type (httpx or httpx2),
        and when it was made."""
        now = self._clock()
        form = {
            "grant_type": "client_credentials",
            "client_id": self.client_id,
            "authorization_details": self._details,
        }
        if self._expires_in is not None:
            form["expires_in"] = str(self._expires_in)
        if self._signer is not None:
            form["client_assertion_type"] = ASSERTION_TYPE
            form["client_assertion"] = self._signer.assertion(self.client_id, self.token_url, now)
        else:
            form["client_secret"] = self._secret
        headers = {"accept": "application/json"}
        if self._dpop is not None:
            headers["dpop"] = self._dpop.proof("POST", self.token_url, None, now)
        return request_type("POST", self.token_url, data=form, headers=headers), now

    def _accept(self, response: httpx.Response, asked_at: float) -> Writ | TokenEndpointError:
        """The writ a token response carries (made current), or why there is none.
        `asked_at` is when the token request was made."""
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code != 200:
            if isinstance(body, dict) and isinstance(body.get("error"), str):
                return TokenEndpointError(self.token_url, response.status_code, body["error"], body.get("error_description"))
            return TokenEndpointError(self.token_url, response.status_code, "unexpected_answer", "no OAuth error body: is this a writ gateway's /oauth2/token?")
        try:
            token, token_type, expires_in = body["access_token"], body["token_type"], int(body["expires_in"])
        except (TypeError, KeyError, ValueError):
            return TokenEndpointError(self.token_url, 200, "unexpected_answer", "the answer carries no access_token, token_type and expires_in")
        bound = token_type.lower() == "dpop"
        if bound != (self._dpop is not None) or not token.startswith("writ_"):
            return TokenEndpointError(self.token_url, 200, "unexpected_answer", f"a {token_type} token where a writ was expected")
        # Counted from before the gateway minted it: never later than the gateway's own
        # expiry (its mint time, truncated to whole seconds, plus expires_in, inclusive).
        writ = Writ(token=token, dpop_bound=bound, minted_at=asked_at, expires_at=asked_at + expires_in)
        self._current = writ
        with self._stats_lock:
            self._stats.mints += 1
        return writ

    def _apply(self, request: httpx.Request, writ: Writ) -> None:
        for name in _CREDENTIAL_HEADERS:
            request.headers.pop(name, None)
        request.headers.pop("dpop", None)
        if writ.dpop_bound:
            request.headers["authorization"] = f"DPoP {writ.token}"
            url = str(request.url.copy_with(query=None, fragment=None))
            request.headers["dpop"] = self._dpop.proof(request.method, url, writ.token, self._clock())
        else:
            request.headers["authorization"] = f"Bearer {writ.token}"

    def _count_retry(self) -> None:
        with self._stats_lock:
            self._stats.expired_retries += 1


def _names_expired_writ(response: httpx.Response) -> bool:
    """Whether an error body carries the code `expired_writ`, wherever its shape puts it
    (OpenAI's `error.code`, or an extra member of Anthropic's or Google's shape)."""
    try:
        body = response.json()
    except ValueError:
        return False

    def walk(v: Any) -> bool:
        if isinstance(v, str):
            return v == "expired_writ"
        if isinstance(v, dict):
            return any(walk(x) for x in v.values())
        if isinstance(v, list):
            return any(walk(x) for x in v)
        return False

    return walk(body)
