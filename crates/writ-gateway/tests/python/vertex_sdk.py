"""The official google-genai SDK in Vertex AI mode against a writ gateway: the writ is
the OAuth credential the SDK sends; the gateway swaps it for a real access token.

Prints the usage the SDK received, one JSON line per call.
"""
import json
import os

from google import genai
from google.genai import types
from google.oauth2.credentials import Credentials

client = genai.Client(
    vertexai=True,
    project=os.environ["VERTEX_PROJECT"],
    location="us-central1",
    credentials=Credentials(token=os.environ["WRIT_TOKEN"]),
    http_options=types.HttpOptions(base_url=os.environ["WRIT_BASE_URL"]),
)

reply = client.models.generate_content(model="gemini-2.0-flash", contents="Hello from the SDK")
assert reply.text == "Hello from mock vertex", reply
print(json.dumps({"input": reply.usage_metadata.prompt_token_count, "output": reply.usage_metadata.candidates_token_count}))

text, last = "", None
for chunk in client.models.generate_content_stream(model="gemini-2.0-flash", contents="Stream it please"):
    text += chunk.text or ""
    last = chunk.usage_metadata
assert text == "Hello from mock vertex", text
print(json.dumps({"input": last.prompt_token_count, "output": last.candidates_token_count}))
