"""The official openai SDK's built-in retry honours the gateway's Retry-After on a 429.

Run by tests/openai_sdk.rs against a gateway limited to one request a second.
Prints one JSON line: the statuses the SDK saw and how long it waited before retrying.
"""
import json
import os
import time

import openai

seen = []


def record(response):
    seen.append((response.status_code, response.headers.get("retry-after"), time.monotonic()))


client = openai.OpenAI(
    base_url=os.environ["WRIT_BASE_URL"],
    api_key=os.environ["WRIT_TOKEN"],
    max_retries=2,
    http_client=openai.DefaultHttpxClient(event_hooks={"response": [record]}),
)
messages = [{"role": "user", "content": "hello"}]
client.chat.completions.create(model="gpt-4o-mini", messages=messages)
# At once again: refused with Retry-After, then retried by the SDK itself.
reply = client.chat.completions.create(model="gpt-4o-mini", messages=messages)
assert reply.choices[0].message.content, reply
statuses = [s for s, _, _ in seen]
waited = seen[2][2] - seen[1][2] if len(seen) > 2 else None
print(json.dumps({"statuses": statuses, "retry_after": seen[1][1], "waited": waited}))
