"""The official openai SDK's AzureOpenAI client against a writ gateway.

Prints the usage the SDK received, one JSON line per call.
"""
import json
import os

import openai

client = openai.AzureOpenAI(
    azure_endpoint=os.environ["WRIT_BASE_URL"],
    api_key=os.environ["WRIT_TOKEN"],
    api_version="2024-10-21",
    max_retries=0,
)
chat = client.chat.completions.create(model="prod-4o", messages=[{"role": "user", "content": "Hello, Azure"}])
assert "Hello, Azure" in chat.choices[0].message.content, chat
print(json.dumps({"input": chat.usage.prompt_tokens, "output": chat.usage.completion_tokens}))

usage = None
for chunk in client.chat.completions.create(
    model="prod-4o", messages=[{"role": "user", "content": "Stream, Azure"}], stream=True, stream_options={"include_usage": True}
):
    usage = chunk.usage or usage
print(json.dumps({"input": usage.prompt_tokens, "output": usage.completion_tokens}))
