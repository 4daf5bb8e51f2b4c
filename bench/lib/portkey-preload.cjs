// Preloaded into Portkey's gateway by bench/run (node --require). Two things, both outside
// Portkey's own work:
// 1. Its start-server.js has no option for the address, and @hono/node-server listens on
//    every interface when given only a port: a listen on a port alone is made to listen on
//    127.0.0.1, as every bench server does.
// 2. Portkey 1.15.2 on node answers every streamed chat completion 500 ("TypeError:
//    immutable", Portkey-AI/gateway issues 1389 and 1550): it wraps the upstream's fetch
//    Response in @hono/node-server's Response, which keeps the upstream's headers object,
//    immutable by the fetch spec, then appends its own headers to it. An upstream answer
//    with an event stream is copied into a Response of its own (mutable headers, the same
//    body stream, not read here) before Portkey sees it.
"use strict";
const net = require("net");
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (port, host, ...rest) {
  if (typeof port === "number" && (host === undefined || host === null || typeof host === "function")) {
    return typeof host === "function"
      ? listen.call(this, port, "127.0.0.1", host, ...rest)
      : listen.call(this, port, "127.0.0.1", ...rest);
  }
  return listen.call(this, port, host, ...rest);
};
const UpstreamResponse = globalThis.Response;
const upstreamFetch = globalThis.fetch;
globalThis.fetch = async function (...args) {
  const r = await upstreamFetch.apply(this, args);
  if (!(r.headers.get("content-type") || "").startsWith("text/event-stream")) return r;
  return new UpstreamResponse(r.body, { status: r.status, statusText: r.statusText, headers: new Headers(r.headers) });
};
