"""The official anthropic and google-genai SDKs against errors the gateway itself produces:
each must raise its own typed error. Prints one JSON line per case.
"""
import json
import os

import anthropic
from google import genai
from google.genai import errors, types

BASE = os.environ["WRIT_BASE_URL"]
WRIT = os.environ["WRIT_TOKEN"]
BAD = "writ_not-a-valid-writ"


def report(sdk, case, error, status, message, shape):
    print(json.dumps({"sdk": sdk, "case": case, "class": type(error).__name__, "status": status, "message": message, "shape": shape}))


def claude(key, model="claude-sonnet-4", max_tokens=64):
    client = anthropic.Anthropic(base_url=BASE, api_key=key, max_retries=0)
    return client.messages.create(model=model, max_tokens=max_tokens, messages=[{"role": "user", "content": "hi"}])


for case, call in [
    ("auth", lambda: claude(BAD)),
    ("denied", lambda: claude(WRIT, model="claude-opus-4")),
    ("cap", lambda: claude(WRIT, max_tokens=800)),
    ("ok", lambda: claude(WRIT)),
    ("rate", lambda: claude(WRIT)),
]:
    try:
        call()
        print(json.dumps({"sdk": "anthropic", "case": case, "class": None}))
    except anthropic.APIStatusError as e:
        # Anthropic's shape: {"type": "error", "error": {"type": ..., "message": ...}}.
        body = e.body if isinstance(e.body, dict) else {}
        shape = [body.get("type"), (body.get("error") or {}).get("type")]
        report("anthropic", case, e, e.status_code, e.message, shape)


def gemini(key, model="gemini-2.0-flash", cap=64):
    client = genai.Client(api_key=key, http_options=types.HttpOptions(base_url=BASE))
    config = types.GenerateContentConfig(max_output_tokens=cap)
    return client.models.generate_content(model=model, contents="hi", config=config)


for case, call in [
    ("auth", lambda: gemini(BAD)),
    ("denied", lambda: gemini(WRIT, model="gemini-2.5-pro")),
    ("cap", lambda: gemini(WRIT, cap=800)),
    ("ok", lambda: gemini(WRIT)),
    ("rate", lambda: gemini(WRIT)),
]:
    try:
        call()
        print(json.dumps({"sdk": "genai", "case": case, "class": None}))
    except errors.APIError as e:
        # Google's shape: the status is read from {"error": {"status": ...}}.
        report("genai", case, e, e.code, e.message, e.status)
