"""The official openai SDK against a writ gateway: only base_url and api_key change.

Run by tests/openai_sdk.rs with WRIT_BASE_URL and WRIT_TOKEN set. Exits non-zero on failure.
"""
import os

import openai

base_url = os.environ["WRIT_BASE_URL"]
writ = os.environ["WRIT_TOKEN"]
client = openai.OpenAI(base_url=base_url, api_key=writ, max_retries=0)

# A plain chat completion.
chat = client.chat.completions.create(
    model="gpt-4o-mini",
    messages=[{"role": "user", "content": "Say hello"}],
)
assert chat.object == "chat.completion", chat
assert "Say hello" in chat.choices[0].message.content, chat
assert chat.usage.total_tokens == chat.usage.prompt_tokens + chat.usage.completion_tokens > 0

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
