"""The official anthropic SDK against a writ gateway: only base_url and api_key change.

Prints the usage the SDK received, one JSON line per call, for the Rust test to compare
with what the gateway recorded.
"""
import json
import os

import anthropic

client = anthropic.Anthropic(base_url=os.environ["WRIT_BASE_URL"], api_key=os.environ["WRIT_TOKEN"], max_retries=0)

msg = client.messages.create(model="claude-sonnet-4", max_tokens=64, messages=[{"role": "user", "content": "Hello, Claude"}])
assert msg.type == "message" and "Hello, Claude" in msg.content[0].text, msg
print(json.dumps({"input": msg.usage.input_tokens, "output": msg.usage.output_tokens}))

with client.messages.stream(model="claude-sonnet-4", max_tokens=64, messages=[{"role": "user", "content": "Stream, Claude"}]) as stream:
    text = "".join(stream.text_stream)
    final = stream.get_final_message()
assert "Stream, Claude" in text, text
print(json.dumps({"input": final.usage.input_tokens, "output": final.usage.output_tokens}))

try:
    client.messages.create(model="claude-opus-4", max_tokens=8, messages=[{"role": "user", "content": "x"}])
    raise SystemExit("a model outside the grant was allowed")
except anthropic.PermissionDeniedError as e:
    assert e.status_code == 403, e
