"""bench/run's clients: single requests (samples, streamed TTFB) and wrk loads, timed or a
pass over every token once."""

import http.client
import json
import os
import subprocess
import time

from procs import die
from servers import CHAT_BODY, HERE, STREAM_BODY


def post(port, path, token, body, headers=None, timeout=30):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    h = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    h.update(headers or {})
    conn.request("POST", path, json.dumps(body), h)
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, data


def check_sample(name, port, token, headers, stream_headers, stream_port=None) -> None:
    """A non-streamed and a streamed request must both answer 200 with the mock's content."""
    status, data = post(port, "/v1/chat/completions", token, CHAT_BODY, headers)
    if status != 200 or b"How can I help" not in data or b"usage" not in data:
        die(f"{name}: sample request answered {status}: {data[:400]!r}")
    status, data = post(stream_port or port, "/v1/chat/completions", token, stream_body_for(name), stream_headers)
    if status != 200 or b"[DONE]" not in data or " help" not in streamed_text(data):
        die(f"{name}: sample streamed request answered {status}: {data[:400]!r}")


def streamed_text(data: bytes) -> str:
    """The text a client reassembles from an OpenAI chat stream: writ may move a few
    characters from one event to the next while it checks they start no secret."""
    text = []
    for line in data.decode("utf-8", "replace").splitlines():
        if not line.startswith("data: ") or line == "data: [DONE]":
            continue
        try:
            event = json.loads(line[len("data: "):])
        except ValueError:
            continue
        for choice in event.get("choices") or []:
            text.append((choice.get("delta") or {}).get("content") or "")
    return "".join(text)


def stream_body_for(name):
    if name.startswith("LiteLLM"):
        return dict(STREAM_BODY, model="gpt-4o-mini-stream")
    return STREAM_BODY


def wrk(port, tokens_file, body_file, headers, conns, duration, run_dir):
    threads = 1 if conns == 1 else 2
    out = os.path.join(run_dir, f"wrk-{time.time_ns()}.json")
    env = dict(os.environ, BENCH_TOKENS=tokens_file, BENCH_BODY=body_file,
               BENCH_HEADERS="|".join(f"{k}: {v}" for k, v in (headers or {}).items()),
               BENCH_ONCE="0", BENCH_OUT=out, BENCH_THREADS=str(threads))
    argv = ["wrk", f"-t{threads}", f"-c{conns}", f"-d{int(duration)}s", "--timeout", "10s",
            "-s", os.path.join(HERE, "post.lua"), f"http://127.0.0.1:{port}/v1/chat/completions"]
    try:
        subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                       timeout=duration + 30, check=True)
    except subprocess.CalledProcessError as e:
        die(f"wrk failed: {e.stderr.decode(errors='replace')}")
    except subprocess.TimeoutExpired:
        die("wrk did not finish in time")
    with open(out) as f:
        r = json.load(f)
    bad = r["status_errors"] + r["connect_errors"] + r["read_errors"] + r["write_errors"] + r["timeouts"]
    r["bad"] = bad
    return r


def wrk_pass(port, tokens_file, body_file, headers, conns, run_dir, n, cap=900):
    """Every token in the file used once, `conns` in flight: returns requests/s."""
    threads = min(2, conns)
    out = os.path.join(run_dir, f"pass-{time.time_ns()}")
    env = dict(os.environ, BENCH_TOKENS=tokens_file, BENCH_BODY=body_file,
               BENCH_HEADERS="|".join(f"{k}: {v}" for k, v in (headers or {}).items()),
               BENCH_ONCE="1", BENCH_OUT=out, BENCH_THREADS=str(threads))
    argv = ["wrk", f"-t{threads}", f"-c{conns}", f"-d{cap}s", "--timeout", "10s",
            "-s", os.path.join(HERE, "post.lua"), f"http://127.0.0.1:{port}/v1/chat/completions"]
    t0 = time.perf_counter()
    p = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    marks = [f"{out}.{i}" for i in range(1, threads + 1)]
    try:
        while not all(os.path.exists(m) for m in marks):
            if p.poll() is not None or time.perf_counter() - t0 > cap:
                die("the pass over every writ did not finish")
            time.sleep(0.02)
        secs = time.perf_counter() - t0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    time.sleep(0.05)
    sent = bad = 0
    for m in marks:
        a, b = open(m).read().split()
        sent, bad = sent + int(a), bad + int(b)
    if bad:
        die(f"{bad} of {sent} requests of the pass over every writ were refused")
    return n / secs


def ttfb(port, token, body, headers, duration):
    """Streamed requests one at a time on one kept-alive connection for `duration` seconds:
    the time from sending the request to reading the first byte of the body."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    h = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    h.update(headers or {})
    payload = json.dumps(body)
    samples = []
    end = time.time() + duration
    while time.time() < end:
        t0 = time.perf_counter()
        conn.request("POST", "/v1/chat/completions", payload, h)
        resp = conn.getresponse()
        first = resp.read(1)
        t1 = time.perf_counter()
        rest = resp.read()
        if resp.status != 200 or not first or b"[DONE]" not in rest:
            die(f"streamed request answered {resp.status}: {(first + rest)[:300]!r}")
        samples.append((t1 - t0) * 1e6)
    conn.close()
    samples.sort()
    return {"n": len(samples), "p50_us": samples[len(samples) // 2],
            "p99_us": samples[min(len(samples) - 1, int(len(samples) * 0.99))]}
