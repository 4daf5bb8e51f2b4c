"""An OTLP/HTTP trace receiver, as a collector's `otlphttp` receiver behaves.

Accepts `POST /v1/traces` with `Content-Type: application/x-protobuf` (optionally
gzip-encoded), decodes the body as an `ExportTraceServiceRequest` with the official
`opentelemetry-proto` package (a body that does not decode is answered 400, as a collector
does), and answers an empty `ExportTraceServiceResponse`. Each span received is appended to
the file named by OTLP_OUT as one JSON line: ids in lower-case hex, name, kind, times,
attributes and the resource's attributes. With OTLP_OUT unset it only decodes and counts
(the bench's receiver that discards).

Prints one JSON line with its port, then serves until stdin closes.
"""

import gzip
import json
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

OUT = os.environ.get("OTLP_OUT")
LOCK = threading.Lock()
KINDS = {0: "unspecified", 1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}


def value(v):
    """An OTLP AnyValue as JSON."""
    which = v.WhichOneof("value")
    if which == "array_value":
        return [value(x) for x in v.array_value.values]
    if which == "kvlist_value":
        return {kv.key: value(kv.value) for kv in v.kvlist_value.values}
    if which == "bytes_value":
        return v.bytes_value.hex()
    return getattr(v, which) if which else None


def attributes(kvs):
    return {kv.key: value(kv.value) for kv in kvs}


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def answer(self, status, body=b"", content_type="application/x-protobuf"):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        if self.path != "/v1/traces":
            return self.answer(404, b"not found", "text/plain")
        if self.headers.get("Content-Type") != "application/x-protobuf":
            return self.answer(415, b"unsupported media type", "text/plain")
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        request = ExportTraceServiceRequest()
        try:
            request.ParseFromString(body)
        except DecodeError:
            return self.answer(400, b"undecodable", "text/plain")
        lines = []
        for resource_spans in request.resource_spans:
            resource = attributes(resource_spans.resource.attributes)
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    lines.append(
                        json.dumps(
                            {
                                "trace_id": span.trace_id.hex(),
                                "span_id": span.span_id.hex(),
                                "parent_span_id": span.parent_span_id.hex(),
                                "name": span.name,
                                "kind": KINDS.get(span.kind, str(span.kind)),
                                "start": span.start_time_unix_nano,
                                "end": span.end_time_unix_nano,
                                "status": span.status.code,
                                "attributes": attributes(span.attributes),
                                "resource": resource,
                                "scope": scope_spans.scope.name,
                            }
                        )
                    )
        if OUT:
            with LOCK, open(OUT, "a") as f:
                for line in lines:
                    f.write(line + "\n")
        self.answer(200, ExportTraceServiceResponse().SerializeToString())


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
threading.Thread(target=server.serve_forever, daemon=True).start()
print(json.dumps({"port": server.server_address[1]}), flush=True)
sys.stdin.read()
server.shutdown()
