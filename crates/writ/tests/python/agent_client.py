"""writ-agent (clients/python) against a running `writ serve`: the official SDKs get fresh
writs on every call with no key handling here.

Run by tests/python_client.rs as `agent_client.py <case>` with WRIT_URL (the gateway),
WRIT_BIN and WRIT_DIR (to register agents) set. Prints one JSON line with what it saw.
"""
import json
import os
import subprocess
import sys
import tempfile
import time

import httpx
import openai
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

import writ_agent

gateway = os.environ["WRIT_URL"]
token_url = f"{gateway}/oauth2/token"
case = sys.argv[1]
upstream = os.environ.get("WRIT_UPSTREAM", "slow")
GRANTS = [{"type": "writ:llm", "upstream": upstream, "actions": ["chat"], "models": ["gpt-4o-mini"]}]


def register(name, p256=False, ceiling=None):
    """Registers agent `name` with a fresh key; returns its private key PEM."""
    key = ec.generate_private_key(ec.SECP256R1()) if p256 else ed25519.Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    with tempfile.NamedTemporaryFile("w", suffix=".pub.pem", delete=False) as f:
        f.write(public)
    ceiling = ceiling or {"type": "writ:llm", "upstream": upstream, "models": ["gpt-4o-mini"]}
    out = subprocess.run(
        [os.environ["WRIT_BIN"], "agent", "add", name, "--ceiling", json.dumps(ceiling), "--public-key", f.name],
        cwd=os.environ["WRIT_DIR"], capture_output=True, text=True,
    )
    assert out.returncode == 0, out.stderr
    return pem


def watch(client, is_async=False):
    """Counts what the SDK's httpx client sends: writs used on the data plane, token
    requests, and the status of every answer."""
    seen = {"writs": set(), "data_requests": 0, "token_requests": 0, "statuses": {}}

    def on_request(request):
        if request.url.path == "/oauth2/token":
            seen["token_requests"] += 1
        else:
            seen["data_requests"] += 1
            seen["writs"].add(request.headers["authorization"])

    def on_response(response):
        seen["statuses"][response.status_code] = seen["statuses"].get(response.status_code, 0) + 1

    if is_async:
        sync_request, sync_response = on_request, on_response

        async def on_request(request):
            sync_request(request)

        async def on_response(response):
            sync_response(response)

    client._client.event_hooks["request"].append(on_request)
    client._client.event_hooks["response"].append(on_response)
    return seen


def chat_100(client):
    start = time.monotonic()
    for i in range(100):
        reply = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": f"call {i}"}])
        assert f"call {i}" in reply.choices[0].message.content, reply
    return time.monotonic() - start


def report(client, seen, elapsed, **extra):
    stats = client.writ_auth.stats
    print(json.dumps({
        "elapsed": elapsed,
        "mints": stats.mints,
        "expired_retries": stats.expired_retries,
        "distinct_writs": len(seen["writs"]),
        "data_requests": seen["data_requests"],
        "token_requests": seen["token_requests"],
        "statuses": seen["statuses"],
        **extra,
    }))


if case == "renewal":
    # 2 s writs, each used for its first second; each call takes the upstream's time, so
    # 100 calls outlive many writs.
    pem = register("long-runner")
    client = writ_agent.openai_client(gateway, "long-runner", grants=GRANTS, private_key=pem, expires_in=2)
    seen = watch(client)
    elapsed = chat_100(client)
    report(client, seen, elapsed)

elif case == "retry":
    # The client's clock runs at a tenth of the real pace: it keeps using writs the gateway
    # has already expired, and each such call must be sent again, once, with a fresh writ.
    pem = register("slow-clock")
    start = time.time()
    client = writ_agent.openai_client(
        gateway, "slow-clock", grants=GRANTS, private_key=pem, expires_in=1,
        clock=lambda: start + (time.time() - start) / 10,
    )
    seen = watch(client)
    elapsed = chat_100(client)
    report(client, seen, elapsed)

elif case == "dpop":
    # A P-256 agent key, writs bound to a DPoP key, the async SDK with concurrent calls.
    import asyncio

    pem = register("bound", p256=True)

    async def main():
        # Built by hand so that no writ is minted before the first calls: 20 calls that
        # start together need one, and one mint (of a 30 s writ) serves them all.
        auth = writ_agent.WritAuth(token_url, "bound", grants=GRANTS, private_key=pem, dpop=True)
        first = openai.AsyncOpenAI(base_url=f"{gateway}/v1", api_key="unused",
                                   http_client=openai.DefaultAsyncHttpxClient(auth=auth))
        await asyncio.gather(*[
            first.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": f"first {i}"}])
            for i in range(20)
        ])
        first_mints = auth.stats.mints
        # Then 1 s writs, 10 calls at a time.
        client = writ_agent.async_openai_client(gateway, "bound", grants=GRANTS, private_key=pem, dpop=True, expires_in=1)
        seen = watch(client, is_async=True)
        start = time.monotonic()
        for round_ in range(5):
            replies = await asyncio.gather(*[
                client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": f"r{round_} c{i}"}])
                for i in range(10)
            ])
            assert all(r.choices[0].message.content for r in replies)
        mints_in_calls = client.writ_auth.stats.mints
        writ = client.writ_auth.writ()
        stolen = httpx.post(f"{gateway}/v1/chat/completions", headers={"authorization": f"Bearer {writ.token}"},
                            json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
        report(client, seen, time.monotonic() - start, first_mints=first_mints, mints_in_calls=mints_in_calls, stolen=stolen.json()["error"]["code"],
               schemes=sorted({w.split(" ")[0] for w in seen["writs"]}))

    asyncio.run(main())

elif case == "threads":
    # 16 threads share one sync client: the first 32 calls need a writ at once, and one
    # mint serves them all.
    from concurrent.futures import ThreadPoolExecutor

    pem = register("threaded")
    auth = writ_agent.WritAuth(token_url, "threaded", grants=GRANTS, private_key=pem)
    client = openai.OpenAI(base_url=f"{gateway}/v1", api_key="unused", http_client=openai.DefaultHttpxClient(auth=auth))
    client.writ_auth = auth
    seen = watch(client)
    start = time.monotonic()
    with ThreadPoolExecutor(16) as pool:
        replies = list(pool.map(
            lambda i: client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": f"t{i}"}]),
            range(32),
        ))
    assert all(r.choices[0].message.content for r in replies)
    report(client, seen, time.monotonic() - start)

elif case == "anthropic":
    pem = register("claude-agent", ceiling={"type": "writ:llm", "upstream": "claude"})
    client = writ_agent.anthropic_client(
        gateway, "claude-agent", private_key=pem, expires_in=2,
        grants=[{"type": "writ:llm", "upstream": "claude", "models": ["claude-sonnet-4"]}],
    )
    seen = watch(client)
    start = time.monotonic()
    for i in range(10):
        message = client.messages.create(model="claude-sonnet-4", max_tokens=20, messages=[{"role": "user", "content": f"m{i}"}])
        assert message.content, message
    report(client, seen, time.monotonic() - start)

elif case == "errors":
    out = {}
    register("victim")
    wrong = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    # At construction: the first writ is minted there, so the caller learns at once.
    try:
        writ_agent.openai_client(gateway, "victim", grants=GRANTS, private_key=wrong)
        raise AssertionError("a wrong key was accepted")
    except writ_agent.TokenEndpointError as err:
        out["wrong_key"] = {"error": err.error, "status": err.status, "message": str(err)}
    # Later, through the SDK: the token endpoint's refusal is the answer the SDK raises.
    auth = writ_agent.WritAuth(token_url, "victim", grants=GRANTS, private_key=wrong)
    sdk = openai.OpenAI(base_url=f"{gateway}/v1", api_key="unused", http_client=httpx.Client(auth=auth), max_retries=0)
    try:
        sdk.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
        raise AssertionError("a wrong key was accepted")
    except openai.AuthenticationError as err:
        out["wrong_key_sdk"] = {"status": err.status_code, "body": err.body}
    # Unreachable: a port nothing listens on.
    try:
        writ_agent.openai_client("http://127.0.0.1:9", "victim", grants=GRANTS, private_key=wrong)
        raise AssertionError("an unreachable gateway went unnoticed")
    except writ_agent.TokenEndpointUnreachable as err:
        out["unreachable"] = str(err)
    # Grants beyond the ceiling.
    pem = register("narrow")
    try:
        writ_agent.openai_client(gateway, "narrow", private_key=pem,
                                 grants=[{"type": "writ:llm", "upstream": upstream, "models": ["gpt-4o"]}])
        raise AssertionError("grants beyond the ceiling were minted")
    except writ_agent.TokenEndpointError as err:
        out["beyond_ceiling"] = {"error": err.error, "description": err.description}
    try:
        writ_agent.WritAuth(token_url, "narrow", grants=GRANTS, private_key="not a key")
        raise AssertionError("a bad key was accepted")
    except writ_agent.InvalidKeyError as err:
        out["bad_key"] = str(err)
    print(json.dumps(out))

else:
    raise SystemExit(f"unknown case {case}")
