"""The processes the torture harness starts when it tests writ itself: its own
``redis-server`` (persisting every write, so a restart loses nothing acknowledged), the
mock upstream, and N ``writ serve`` replicas sharing that Redis, each with its own data
directory holding the same copied keys and the same registered agent.
"""

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import http1

AGENT = "torture"
GRANT = {"type": "writ:llm", "upstream": "mock", "actions": ["chat"], "models": ["gpt-4o-mini"]}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def poll(what, check, deadline_s):
    """Awaits ``check()`` until it is true, or raises after ``deadline_s`` seconds."""
    deadline = time.monotonic() + deadline_s
    while True:
        if await check():
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: not ready within {deadline_s}s")
        await asyncio.sleep(0.05)


class Redis:
    """A redis-server of the harness's own on a free loopback port, with an append-only
    file synced on every write (``appendfsync always``): a write Redis acknowledged
    survives a SIGKILL, as budgets must."""

    def __init__(self, work, binary):
        self.dir = os.path.join(work, "redis")
        os.makedirs(self.dir, exist_ok=True)
        self.binary = binary
        self.port = free_port()
        self.proc = None

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}"

    async def start(self):
        log = open(os.path.join(self.dir, "redis.log"), "ab")
        self.proc = await asyncio.create_subprocess_exec(
            self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.dir,
            "--save", "", "--appendonly", "yes", "--appendfsync", "always",
            "--protected-mode", "yes", "--daemonize", "no",
            stdout=log, stderr=log, stdin=subprocess.DEVNULL,
        )
        await poll("redis", self.ping, 20)

    async def ping(self):
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        except OSError:
            return False
        try:
            writer.write(b"PING\r\n")
            return (await asyncio.wait_for(reader.readline(), 1)).startswith(b"+PONG")
        except (OSError, asyncio.TimeoutError):
            return False
        finally:
            writer.close()

    async def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        await self.proc.wait()

    async def stop(self):
        if self.proc and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGKILL)
            await self.proc.wait()


class Mock:
    """The mock upstream (mock_upstream.py) in a process of its own."""

    def __init__(self, key, port=0):
        self.key = key
        self.port = port
        self.proc = None

    async def start(self):
        here = os.path.dirname(os.path.abspath(__file__))
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, os.path.join(here, "mock_upstream.py"), "--key", self.key, "--port", str(self.port),
            stdout=asyncio.subprocess.PIPE, stdin=subprocess.DEVNULL,
        )
        line = await asyncio.wait_for(self.proc.stdout.readline(), 20)
        if not line.startswith(b"mock listening on "):
            raise RuntimeError(f"mock upstream did not start: {line!r}")
        self.port = int(line.split()[-1])

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    async def forbid(self, text):
        """Tells the mock a string that must never reach it (a key given to callers)."""
        await http1.request(self.url + "/_torture/forbid", "POST", body=text.encode())

    async def served(self):
        return (await http1.request(self.url + "/_torture/served", timeout=60)).json()

    async def stop(self):
        if self.proc and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()


CONFIG = """\
# Written by bench/torture: every replica reads this file.
[limiter]
backend = "redis"
redis_url = "{redis}"
on_backend_failure = "closed"
lease_ttl = "{lease_ttl}s"

# The budget under torture: the agent's tokens for the UTC day.
[[limit]]
scope = "agent"
dimension = "tokens"
per = "day"
limit = {budget}

# Far above what is ever in flight: every request holds a lease, none is refused by it.
[[limit]]
scope = "agent"
dimension = "concurrency"
limit = 1000000

[upstreams.mock]
kind = "openai"
base_url = "{mock}/v1"
allow_private_network = true
api_key = "{key}"
"""


class Writ:
    """N ``writ serve`` replicas on one Redis, each in its own data directory."""

    def __init__(self, work, binary, replicas, redis_url, mock_url, upstream_key, budget, lease_ttl):
        self.work = work
        self.binary = binary
        self.n = replicas
        self.config = os.path.join(work, "writ.toml")
        with open(self.config, "w") as f:
            f.write(CONFIG.format(redis=redis_url, lease_ttl=lease_ttl, budget=budget, mock=mock_url, key=upstream_key))
        self.template = os.path.join(work, "template")
        self.dirs = [os.path.join(work, f"replica-{i}") for i in range(replicas)]
        self.ports = [free_port() for _ in range(replicas)]
        self.procs = [None] * replicas
        self.up = [False] * replicas

    def urls(self):
        return [f"http://127.0.0.1:{p}" for p in self.ports]

    def cli(self, *args, data_dir=None):
        cmd = [self.binary, *args, "--config", self.config, "--data-dir", data_dir or self.template]
        out = subprocess.run(cmd, capture_output=True, timeout=60)
        if out.returncode != 0:
            raise RuntimeError(f"writ {args[0]} {args[1]} failed: {out.stderr.decode(errors='replace')[-2000:]}")
        return out.stdout.decode().strip()

    def mint_command(self):
        return [self.binary, "token", "mint", "--agent", AGENT, "--grant", json.dumps(GRANT), "--ttl", "30s",
                "--config", self.config, "--data-dir", self.template]

    async def setup(self):
        """Creates the keys once (a first start in the template directory), registers the
        agent there, and gives every replica a copy of the keys and the same agent."""
        port = free_port()
        proc = await self._serve(self.template, port, os.path.join(self.work, "template.log"))
        try:
            await poll("writ (template)", lambda: self._ready(port), 60)
        finally:
            proc.terminate()
            await proc.wait()
        ceiling = json.dumps({"type": "writ:llm", "upstream": "mock"})
        self.cli("agent", "add", AGENT, "--ceiling", ceiling)
        for d in self.dirs:
            os.makedirs(d, mode=0o700)
            shutil.copytree(os.path.join(self.template, "keys"), os.path.join(d, "keys"))
            self.cli("agent", "add", AGENT, "--ceiling", ceiling, data_dir=d)

    async def _serve(self, data_dir, port, log_path):
        log = open(log_path, "ab")
        return await asyncio.create_subprocess_exec(
            self.binary, "serve", "--config", self.config, "--data-dir", data_dir, "--listen", f"127.0.0.1:{port}",
            stdout=log, stderr=log, stdin=subprocess.DEVNULL,
            env={**os.environ, "WRIT_LOG": os.environ.get("WRIT_LOG", "warn")},
        )

    async def _ready(self, port):
        try:
            return (await http1.request(f"http://127.0.0.1:{port}/readyz", timeout=2)).status == 200
        except (http1.Cut, http1.Refused):
            return False

    def log(self, i):
        return os.path.join(self.work, f"replica-{i}.log")

    async def start(self, i):
        self.procs[i] = await self._serve(self.dirs[i], self.ports[i], self.log(i))
        await poll(f"writ replica {i}", lambda: self._ready(self.ports[i]), 60)
        self.up[i] = True

    async def kill(self, i):
        """SIGKILL: nothing settles, nothing flushes."""
        self.up[i] = False
        self.procs[i].send_signal(signal.SIGKILL)
        await self.procs[i].wait()

    async def stop(self):
        for p in self.procs:
            if p and p.returncode is None:
                p.send_signal(signal.SIGKILL)
                await p.wait()

    def settle_failures(self):
        """Settlements a replica logged as failed (Redis unreachable): those reservations
        stay charged as reserved."""
        n = 0
        for i in range(self.n):
            try:
                with open(self.log(i), errors="replace") as f:
                    n += sum("settling a reservation failed" in line for line in f)
            except OSError:
                pass
        return n

    async def counters(self):
        """The agent's limit counters, read through the admin API of an up replica."""
        token = self.cli("admin", "token", "--as", "torture")
        i = next(i for i in range(self.n) if self.up[i])
        reply = await http1.request(
            f"http://127.0.0.1:{self.ports[i]}/admin/v1/usage?scope=agent={AGENT}",
            headers={"authorization": f"Bearer {token}"}, timeout=30,
        )
        if reply.status != 200:
            raise RuntimeError(f"admin usage answered {reply.status}: {reply.body[:500]!r}")
        out = {"tokens": 0, "leases": 0}
        for c in reply.json()["counters"]:
            if c["dimension"] == "tokens" and c["window"].startswith("d"):
                out["tokens"] += c["used"]
            elif c["dimension"] == "concurrency":
                out["leases"] += c["used"]
        return out
