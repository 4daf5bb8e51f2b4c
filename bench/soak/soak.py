#!/usr/bin/env python3
"""Soak: mixed traffic through one ``writ serve`` at a fixed rate for a fixed time, sampling
the gateway's resident memory, open file descriptors and writ cache every 10 s, then judging
whether they stayed flat after the warm-up and whether every answer was the expected one.

Standard library only (Python 3.9+). It reuses the torture harness's mock upstream and HTTP
client (``bench/torture``). Prints one line ``soak: PASS …`` or ``soak: FAIL …`` and exits 1
on FAIL. See README.md beside it.
"""

import argparse
import asyncio
import base64
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "torture"))

import http1  # noqa: E402
from cluster import Mock, free_port, poll  # noqa: E402

UPSTREAM_KEY = "sk-soak-upstream-0123456789abcdef"
AGENT = "soak"
CHAT = {"type": "writ:llm", "upstream": "mock", "actions": ["chat"], "models": ["gpt-4o-mini"]}

CONFIG = """\
# Written by bench/soak.
[upstreams.mock]
kind = "openai"
base_url = "{mock}/v1"
allow_private_network = true
api_key = "{key}"
"""

# What each kind of call must answer; anything else is an unexpected error. Calls without
# a valid writ come from other loopback addresses than the agent's (127.0.0.2, and 127.0.0.3
# for revoked writs), as an attacker's would: writ slows down an address that presents
# invalid writs (429 `too_many_failed_authentications`), which must never reach the agent.
EXPECTED = {
    "chat": {200},
    "stream": {200},
    "mint": {200},
    "revoked": {401},
    "no_writ": {401, 429},
    "garbage_writ": {401, 429},
    "wrong_model": {403},
    "over_budget": {429},
}

# Share of each kind in the traffic (the rest of each second's calls are chat).
MIX = [
    ("chat", 0.40),
    ("stream", 0.30),
    ("mint", 0.10),
    ("no_writ", 0.05),
    ("garbage_writ", 0.05),
    ("wrong_model", 0.05),
    ("over_budget", 0.05),
]


class Gateway:
    """One ``writ serve`` in a data directory of its own, with the agent ``soak`` holding a
    client secret for the token endpoint."""

    def __init__(self, work, binary, mock_url):
        self.work = work
        self.binary = binary
        self.config = os.path.join(work, "writ.toml")
        with open(self.config, "w") as f:
            f.write(CONFIG.format(mock=mock_url, key=UPSTREAM_KEY))
        self.data = os.path.join(work, "data")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = None
        self.secret = None

    def cli(self, *args):
        cmd = [self.binary, *args, "--config", self.config, "--data-dir", self.data]
        out = subprocess.run(cmd, capture_output=True, timeout=60)
        if out.returncode != 0:
            raise RuntimeError(f"writ {' '.join(args[:2])} failed: {out.stderr.decode(errors='replace')[-2000:]}")
        return out.stdout.decode()

    async def start(self):
        log = open(os.path.join(self.work, "writ.log"), "ab")
        self.proc = await asyncio.create_subprocess_exec(
            self.binary, "serve", "--config", self.config, "--data-dir", self.data,
            "--listen", f"127.0.0.1:{self.port}",
            stdout=log, stderr=log, stdin=subprocess.DEVNULL,
            env={**os.environ, "WRIT_LOG": os.environ.get("WRIT_LOG", "warn")},
        )
        await poll("writ", self.ready, 60)

    async def ready(self):
        try:
            return (await http1.request(self.url + "/readyz", timeout=2)).status == 200
        except (http1.Cut, http1.Refused):
            return False

    async def setup(self):
        """First start creates the data directory and keys; the agent is added offline,
        then the gateway starts again and serves the soak."""
        await self.start()
        await self.stop()
        out = self.cli("agent", "add", AGENT, "--ceiling",
                       json.dumps({"type": "writ:llm", "upstream": "mock"}),
                       "--generate-secret")
        m = re.search(r"client_secret[^A-Za-z0-9_-]+([A-Za-z0-9_\-\.~+/=]{16,})", out)
        if m is None:
            raise RuntimeError(f"agent add printed no client secret: {out[:300]!r}")
        self.secret = m.group(1)
        await self.start()

    def pid(self):
        return self.proc.pid

    async def stop(self):
        if self.proc and self.proc.returncode is None:
            self.proc.terminate()
            await self.proc.wait()


class Soak:
    def __init__(self, gw, rate, seconds):
        self.gw = gw
        self.rate = rate
        self.seconds = seconds
        self.writ = None
        self.budget_writ = None
        self.counts = {k: 0 for k in EXPECTED}
        self.counts["revoke"] = 0
        self.unexpected = []
        self.samples = []
        self.rid = 0

    async def mint(self, grants, expires_in=None):
        form = {
            "grant_type": "client_credentials",
            "client_id": AGENT,
            "client_secret": self.gw.secret,
            "authorization_details": json.dumps(grants),
        }
        if expires_in is not None:
            form["expires_in"] = str(expires_in)
        body = "&".join(f"{k}={_quote(v)}" for k, v in form.items()).encode()
        reply = await http1.request(
            self.gw.url + "/oauth2/token", "POST",
            headers={"content-type": "application/x-www-form-urlencoded"}, body=body, timeout=30,
        )
        return reply

    async def refresh(self):
        """A fresh chat writ every 10 s (they live 30 s), and a budget-capped one."""
        while True:
            r = await self.mint([CHAT])
            if r.status == 200:
                self.writ = r.json()["access_token"]
            r = await self.mint([CHAT, {"type": "writ:budget", "tokens": 1}])
            if r.status == 200:
                self.budget_writ = r.json()["access_token"]
            await asyncio.sleep(10)

    def chat_body(self, stream, model="gpt-4o-mini"):
        self.rid += 1
        body = {"model": model, "max_tokens": 16,
                "messages": [{"role": "user", "content": f"soak torture rid=s{self.rid} in=20 out=8 ms=5"}]}
        if stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        return body

    async def call(self, kind):
        headers = {"content-type": "application/json"}
        if kind == "mint":
            # A writ minted for a task it is not used for here: short-lived, as a JIT agent
            # asks. The gateway holds every writ it mints in its verified cache until it
            # expires, so the cache's steady state (mint rate × lifetime) is reached within
            # the warm-up.
            reply = await self.mint([CHAT], expires_in=5)
            return reply, None
        if kind in ("chat", "stream"):
            headers["authorization"] = f"Bearer {self.writ}"
            body = self.chat_body(kind == "stream")
        elif kind == "no_writ":
            body = self.chat_body(False)
        elif kind == "garbage_writ":
            headers["authorization"] = "Bearer " + base64.urlsafe_b64encode(os.urandom(96)).decode()
            body = self.chat_body(False)
        elif kind == "wrong_model":
            headers["authorization"] = f"Bearer {self.writ}"
            body = self.chat_body(False, model="gpt-4o")
        elif kind == "over_budget":
            headers["authorization"] = f"Bearer {self.budget_writ}"
            body = self.chat_body(False)
        else:
            raise ValueError(kind)
        source = "127.0.0.2" if kind in ("no_writ", "garbage_writ") else None
        reply = await http1.request(
            self.gw.url + "/v1/chat/completions", "POST", headers=headers, body=body, timeout=30, source=source,
        )
        problem = None
        if reply.status == 429 and kind in ("no_writ", "garbage_writ"):
            if reply.json()["error"]["code"] != "too_many_failed_authentications":
                problem = f"429 {reply.json()['error']['code']}"
        if reply.status == 200 and kind == "stream" and b"data: [DONE]" not in reply.body:
            problem = "stream without [DONE]"
        if reply.status == 200 and kind == "chat" and reply.json().get("usage", {}).get("total_tokens") != 28:
            problem = "usage not passed through"
        return reply, problem

    async def one(self, kind):
        try:
            reply, problem = await self.call(kind)
        except (http1.Cut, http1.Refused) as e:
            self.unexpected.append((kind, f"transport: {e}"))
            return
        self.counts[kind] += 1
        if reply.status not in EXPECTED[kind]:
            self.unexpected.append((kind, f"{reply.status} {reply.body[:200]!r}"))
        elif problem:
            self.unexpected.append((kind, problem))

    async def revocations(self):
        """Every 15 s: a writ is minted, works, is revoked by its token id, and is refused."""
        while True:
            await asyncio.sleep(15)
            r = await self.mint([CHAT])
            if r.status != 200:
                self.unexpected.append(("revoke", f"mint {r.status}"))
                continue
            writ = r.json()["access_token"]
            token_id = await asyncio.to_thread(self.token_id, writ)
            await asyncio.to_thread(self.gw.cli, "revoke", "--token-id", token_id, "--gateway", self.gw.url)
            self.counts["revoke"] += 1
            reply = await http1.request(
                self.gw.url + "/v1/chat/completions", "POST",
                headers={"authorization": f"Bearer {writ}", "content-type": "application/json"},
                body=self.chat_body(False), timeout=30, source="127.0.0.3",
            )
            self.counts["revoked"] += 1
            if reply.status not in EXPECTED["revoked"]:
                self.unexpected.append(("revoked", f"{reply.status} {reply.body[:200]!r}"))

    def token_id(self, writ):
        out = subprocess.run(
            [self.gw.binary, "token", "inspect", "-", "--config", self.gw.config, "--data-dir", self.gw.data],
            input=writ.encode(), capture_output=True, timeout=60,
        )
        m = re.search(r'token_id\("([^"]+)"\)', out.stdout.decode())
        if m is None:
            raise RuntimeError(f"no token id in `writ token inspect`: {out.stdout[:300]!r} {out.stderr[:300]!r}")
        return m.group(1)

    async def sample(self, started):
        pid = self.gw.pid()
        rss_kb = 0
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss_kb = int(line.split()[1])
        fds = len(os.listdir(f"/proc/{pid}/fd"))
        cache = None
        try:
            metrics = (await http1.request(self.gw.url + "/metrics", timeout=10)).body.decode()
            m = re.search(r"^writ_writ_cache_entries (\d+)", metrics, re.M)
            cache = int(m.group(1)) if m else None
        except (http1.Cut, http1.Refused):
            pass
        s = {"t": round(time.monotonic() - started), "rss_mb": round(rss_kb / 1024, 1), "fds": fds, "writ_cache": cache,
             "calls": sum(self.counts.values()), "unexpected": len(self.unexpected)}
        self.samples.append(s)
        print(json.dumps(s), flush=True)

    async def run(self):
        refresher = asyncio.create_task(self.refresh())
        await poll("first writ", self._have_writs, 30)
        revoker = asyncio.create_task(self.revocations())
        started = time.monotonic()
        await self.sample(started)
        next_sample = started + 10
        tasks = set()
        kinds = [k for k, _ in MIX]
        weights = [w for _, w in MIX]
        interval = 1 / self.rate
        n = 0
        while time.monotonic() - started < self.seconds:
            due = started + n * interval
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            n += 1
            t = asyncio.create_task(self.one(random.choices(kinds, weights)[0]))
            tasks.add(t)
            t.add_done_callback(tasks.discard)
            if time.monotonic() >= next_sample:
                next_sample += 10
                await self.sample(started)
        await asyncio.gather(*tasks)
        await self.sample(started)
        refresher.cancel()
        revoker.cancel()
        self.offered = n

    async def _have_writs(self):
        return self.writ is not None and self.budget_writ is not None


def _quote(v):
    from urllib.parse import quote
    return quote(v, safe="")


def flat(values, slack):
    """Whether ``values`` (after the warm-up) show no growth: the mean of the last third is
    at most the mean of the first third plus ``slack``."""
    k = max(1, len(values) // 3)
    first, last = values[:k], values[-k:]
    return sum(last) / len(last) <= sum(first) / len(first) + slack, sum(first) / len(first), sum(last) / len(last)


def verdict(soak, warmup, rss_slack_mb, fd_slack, cache_slack):
    after = [s for s in soak.samples if s["t"] >= warmup]
    problems = []
    figures = {}
    for key, slack in (("rss_mb", rss_slack_mb), ("fds", fd_slack), ("writ_cache", cache_slack)):
        values = [s[key] for s in after if s[key] is not None]
        if len(values) < 3:
            problems.append(f"too few samples of {key} after the warm-up")
            continue
        ok, first, last = flat(values, slack)
        figures[key] = (round(first, 1), round(last, 1), max(values))
        if not ok:
            problems.append(f"{key} grew: {first:.1f} → {last:.1f} (slack {slack})")
    if soak.unexpected:
        problems.append(f"{len(soak.unexpected)} unexpected answers, first: {soak.unexpected[:3]}")
    for kind in EXPECTED:
        if soak.counts[kind] == 0:
            problems.append(f"no {kind} call was made")
    return problems, figures


async def main_async(a):
    work = a.work_dir or tempfile.mkdtemp(prefix="writ-soak-")
    os.makedirs(work, exist_ok=True)
    mock = Mock(UPSTREAM_KEY)
    await mock.start()
    gw = Gateway(work, a.writ_bin, mock.url)
    try:
        await gw.setup()
        soak = Soak(gw, a.rate, a.minutes * 60)
        await soak.run()
        problems, figures = verdict(soak, a.warmup, a.rss_slack_mb, a.fd_slack, a.cache_slack)
    finally:
        await gw.stop()
        await mock.stop()
    for p in problems:
        print(f"  problem: {p}")
    word = "PASS" if not problems else "FAIL"
    fig = " ".join(f"{k}={v[0]}->{v[1]}(max {v[2]})" for k, v in figures.items())
    counts = " ".join(f"{k}={v}" for k, v in soak.counts.items())
    print(f"soak: {word} minutes={a.minutes} rate={a.rate}/s offered={soak.offered} {counts} "
          f"unexpected={len(soak.unexpected)} {fig}" + ("" if not problems else f" kept={work}"))
    if a.json:
        print(json.dumps({"samples": soak.samples, "counts": soak.counts, "unexpected": soak.unexpected[:50]}))
    if not problems and not a.work_dir:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if not problems else 1


def main():
    root = os.path.abspath(os.path.join(HERE, "..", ".."))
    release = os.path.join(root, "target", "release", "writ")
    default_bin = release if os.path.exists(release) else os.path.join(root, "target", "debug", "writ")
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--writ-bin", default=default_bin)
    p.add_argument("--minutes", type=float, default=10)
    p.add_argument("--rate", type=float, default=40, help="calls started per second")
    p.add_argument("--warmup", type=float, default=120, help="seconds before growth counts")
    p.add_argument("--rss-slack-mb", type=float, default=8)
    p.add_argument("--fd-slack", type=float, default=8)
    p.add_argument("--cache-slack", type=float, default=16)
    p.add_argument("--work-dir")
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    sys.exit(asyncio.run(main_async(a)))


if __name__ == "__main__":
    main()
