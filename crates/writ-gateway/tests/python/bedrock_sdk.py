"""The official boto3 bedrock-runtime client against a writ gateway: only endpoint_url
changes, and the writ goes in AWS_BEARER_TOKEN_BEDROCK (Bedrock API-key auth, which
boto3 sends as `Authorization: Bearer`). The client holds no AWS credentials at all.

Prints the usage the SDK received, one JSON line per call.
"""
import json
import os

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

MODEL = "anthropic.claude-3-haiku-20240307-v1:0"
client = boto3.client(
    "bedrock-runtime",
    region_name="us-east-1",
    endpoint_url=os.environ["WRIT_BASE_URL"],
    config=Config(retries={"max_attempts": 1}),
)
messages = [{"role": "user", "content": [{"text": "hello bedrock through writ"}]}]

reply = client.converse(modelId=MODEL, messages=messages, inferenceConfig={"maxTokens": 4})
text = reply["output"]["message"]["content"][0]["text"]
assert text == "Hello from mock bedrock", text
print(json.dumps({"call": "converse", "input": reply["usage"]["inputTokens"], "output": reply["usage"]["outputTokens"]}))

stream = client.converse_stream(modelId=MODEL, messages=messages, inferenceConfig={"maxTokens": 6})
text, usage = "", None
for ev in stream["stream"]:
    if "contentBlockDelta" in ev:
        text += ev["contentBlockDelta"]["delta"]["text"]
    if "metadata" in ev:
        usage = ev["metadata"]["usage"]
assert text == "Hello from mock bedrock again and", text
print(json.dumps({"call": "converse_stream", "input": usage["inputTokens"], "output": usage["outputTokens"]}))

try:
    client.converse(modelId="amazon.nova-pro-v1:0", messages=messages)
    raise SystemExit("a model outside the grant was allowed")
except ClientError as e:
    assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 403, e.response
    print(json.dumps({"call": "denied", "status": 403}))
