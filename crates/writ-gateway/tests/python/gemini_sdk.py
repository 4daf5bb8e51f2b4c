"""The official google-genai SDK against a writ gateway: only base_url and api_key change.

Prints the usage the SDK received, one JSON line per call.
"""
import json
import os

from google import genai
from google.genai import errors, types

client = genai.Client(api_key=os.environ["WRIT_TOKEN"], http_options=types.HttpOptions(base_url=os.environ["WRIT_BASE_URL"]))

reply = client.models.generate_content(model="gemini-2.0-flash", contents="Hello, Gemini")
assert "Hello, Gemini" in reply.text, reply
print(json.dumps({"input": reply.usage_metadata.prompt_token_count, "output": reply.usage_metadata.candidates_token_count}))

text, last = "", None
for chunk in client.models.generate_content_stream(model="gemini-2.0-flash", contents="Stream, Gemini"):
    text += chunk.text or ""
    last = chunk.usage_metadata
assert "Stream, Gemini" in text, text
print(json.dumps({"input": last.prompt_token_count, "output": last.candidates_token_count}))

try:
    client.models.generate_content(model="gemini-2.5-pro", contents="x")
    raise SystemExit("a model outside the grant was allowed")
except errors.ClientError as e:
    assert e.code == 403, e
