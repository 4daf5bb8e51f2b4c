"""Reads a gateway's /metrics and parses it with the official Prometheus parser
(prometheus_client.parser.text_string_to_metric_families), printing one JSON line per
sample, then one with the answer's status and Content-Type.

METRICS_URL: where to read; METRICS_BEARER: a writ to send, if any.
"""

import json
import os
import urllib.error
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

request = urllib.request.Request(os.environ["METRICS_URL"])
if os.environ.get("METRICS_BEARER"):
    request.add_header("Authorization", "Bearer " + os.environ["METRICS_BEARER"])
with urllib.request.urlopen(request) as response:
    content_type = response.headers["Content-Type"]
    text = response.read().decode("utf-8")

for family in text_string_to_metric_families(text):
    for sample in family.samples:
        print(
            json.dumps(
                {
                    "family": family.name,
                    "type": family.type,
                    "name": sample.name,
                    "labels": sample.labels,
                    "value": sample.value,
                }
            )
        )
print(json.dumps({"content_type": content_type, "bytes": len(text)}))
