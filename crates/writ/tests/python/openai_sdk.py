"""The official openai SDK against a writ gateway: only base_url and api_key change.

Run by tests/openai_sdk.rs with WRIT_BASE_URL and WRIT_TOKEN set. Exits non-zero on failure.
"""
import os
import subprocess

import openai
import requests

base_url = os.environ["WRIT_BASE_URL"]
writ = os.environ["WRIT_TOKEN"]
wide = os.environ["WRIT_TOKEN_WIDE"]
client = openai.OpenAI(base_url=base_url, api_key=writ, max_retries=0)
admin = subprocess.run([os.environ["WRIT_BIN"], "admin", "token"], cwd=os.environ["WRIT_DIR"], capture_output=True, text=True, check=True).stdout.strip()
gateway = base_url.removesuffix("/v1")

# List prices in micro-USD per token (pricing.toml): input, output.
PRICES = {"gpt-4o-mini": (0.15, 0.60), "text-embedding-3-small": (0.02, 0.0)}


def last_call():
    calls = requests.get(f"{gateway}/admin/v1/usage/calls", headers={"Authorization": f"Bearer {admin}"}, timeout=10).json()["calls"]
    return calls[-1]


def expect_recorded(model, input_tokens, output_tokens):
    call = last_call()
    assert call["model"] == model, call
    assert call["usage"]["input_tokens"] == input_tokens, (call, input_tokens)
    assert call["usage"]["output_tokens"] == output_tokens, (call, output_tokens)
    assert call["estimated"] is False, call
    price_in, price_out = PRICES[model]
    expected = -(-round(input_tokens * price_in * 1e6 + output_tokens * price_out * 1e6) // 1_000_000)
    assert call["cost_usd_micros"] == expected, (call, expected)

# A plain chat completion.
chat = client.chat.completions.create(
    model="gpt-4o-mini",
    messages=[{"role": "user", "content": "Say hello"}],
)
assert chat.object == "chat.completion", chat
assert "Say hello" in chat.choices[0].message.content, chat
assert chat.usage.total_tokens == chat.usage.prompt_tokens + chat.usage.completion_tokens > 0
expect_recorded("gpt-4o-mini", chat.usage.prompt_tokens, chat.usage.completion_tokens)

# A streamed chat, with the final usage chunk.
stream = client.chat.completions.create(
    model="gpt-4o-mini",
    messages=[{"role": "user", "content": "Stream please"}],
    stream=True,
    stream_options={"include_usage": True},
)
text, usage, chunks = "", None, 0
for chunk in stream:
    chunks += 1
    if chunk.choices:
        text += chunk.choices[0].delta.content or ""
    if chunk.usage:
        usage = chunk.usage
assert chunks > 3, chunks
assert "Stream please" in text, text
assert usage is not None and usage.completion_tokens > 0, usage
expect_recorded("gpt-4o-mini", usage.prompt_tokens, usage.completion_tokens)

# A stream that did not ask for usage is metered all the same, and shows none.
quiet = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "quiet"}], stream=True)
assert all(chunk.usage is None for chunk in quiet)
assert last_call()["usage"]["output_tokens"] > 0 and last_call()["estimated"] is False

# Embeddings (the SDK asks for base64 and decodes it) and the model list.
wide_client = openai.OpenAI(base_url=base_url, api_key=wide, max_retries=0)
emb = wide_client.embeddings.create(model="text-embedding-3-small", input=["hello", "world"])
assert len(emb.data) == 2 and len(emb.data[0].embedding) == 8, emb
expect_recorded("text-embedding-3-small", emb.usage.prompt_tokens, 0)
resp = wide_client.responses.create(model="gpt-4o-mini", input="Respond, please")
assert "Respond, please" in resp.output_text, resp
expect_recorded("gpt-4o-mini", resp.usage.input_tokens, resp.usage.output_tokens)
ids = [m.id for m in wide_client.models.list()]
assert "gpt-4o-mini" in ids, ids

# Errors arrive as the SDK's own exception types.
try:
    client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    raise SystemExit("a model outside the grant was allowed")
except openai.PermissionDeniedError as e:
    assert e.status_code == 403 and e.code == "grant_denied", e

bad = openai.OpenAI(base_url=base_url, api_key="writ_forged", max_retries=0)
try:
    bad.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
    raise SystemExit("a forged writ was accepted")
except openai.AuthenticationError as e:
    assert e.status_code == 401, e

print("openai sdk: ok")
