#!/usr/bin/env python3
"""Budget torture harness: many concurrent chat completions and streams of known token
counts through an OpenAI-compatible gateway, while its replicas are SIGKILLed and
restarted and its Redis is restarted; then checks that the spend the gateway admitted
stays within its token budget plus the stated bound, that its usage ledger equals what
the upstream served, and that no concurrency lease is left held. Prints one verdict line,
``torture: PASS ...`` or ``torture: FAIL ...``, and exits 1 on FAIL.

By default it starts everything itself (Redis, the mock upstream, N writ replicas); with
``--base-url`` it drives a gateway someone else runs. See README.md beside this file.
Standard library only.
"""

import argparse
import asyncio
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import cluster  # noqa: E402
import http1  # noqa: E402
from ledger import ABANDON_AFTER_S, Plan, judge  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--base-url", action="append", default=[],
                   help="a gateway replica's base URL (repeat); when given, nothing is started but the mock")
    p.add_argument("--key", help="the key callers present (external gateway)")
    p.add_argument("--key-cmd", help="a command printing the key; re-run every --key-refresh seconds")
    p.add_argument("--key-refresh", type=float, default=10.0)
    p.add_argument("--budget", type=int, help="the gateway's token budget for the caller (external: required)")
    p.add_argument("--upstream-key", default="sk-torture-upstream-0123456789",
                   help="the credential the gateway must inject into upstream requests")
    p.add_argument("--mock-port", type=int, default=0, help="port of the mock upstream (external: fix it)")
    p.add_argument("--ledger-cmd", help="external: a command printing the gateway's tokens used for the caller")
    p.add_argument("--replicas", type=int, default=3)
    p.add_argument("--requests", type=int, default=2000)
    p.add_argument("--concurrency", type=int, default=200)
    p.add_argument("--rate", type=float, default=150.0, help="requests started per second, at most")
    p.add_argument("--kills", type=int, help="replica SIGKILLs during the run (default: one per replica)")
    p.add_argument("--no-redis-restart", action="store_true")
    p.add_argument("--budget-fraction", type=float, default=0.6,
                   help="writ mode: the budget as a fraction of all requests' estimates")
    p.add_argument("--lease-ttl", type=int,
                   help="writ mode: [limiter] lease_ttl in seconds; by default the run's length + 15 s, so "
                        "the leases of unsettled reservations are still counted when the run ends")
    p.add_argument("--writ-bin", default=os.path.join(REPO, "target", "debug", "writ"))
    p.add_argument("--redis-bin", default="/usr/bin/redis-server")
    p.add_argument("--work-dir", help="keep the replicas' data and logs here (default: a temporary directory)")
    p.add_argument("--redis-grace", type=float, default=2.0,
                   help="seconds after Redis is back in which a settlement may still have failed")
    p.add_argument("--json", action="store_true", help="also print the full report as one JSON line")
    a = p.parse_args(argv)
    if a.base_url:
        if not (a.key or a.key_cmd) or a.budget is None:
            p.error("--base-url needs --key or --key-cmd, and --budget")
    return a


class Keys:
    """The key callers present: fixed, or a command's output refreshed on a period."""

    def __init__(self, key=None, cmd=None, refresh=10.0):
        self.key, self.cmd, self.refresh, self.at = key, cmd, refresh, 0.0

    def get(self):
        if self.cmd and time.monotonic() - self.at > self.refresh:
            argv = self.cmd if isinstance(self.cmd, list) else shlex.split(self.cmd)
            out = subprocess.run(argv, capture_output=True, timeout=60)
            if out.returncode != 0 or not out.stdout.strip():
                raise RuntimeError(f"key command failed: {out.stderr.decode(errors='replace')[-500:]}")
            self.key, self.at = out.stdout.decode().strip(), time.monotonic()
        return self.key


async def send_one(plan, item, url, keys, t0):
    """Sends one planned request; returns what the client saw."""
    rec = {"rid": item.rid, "start": time.monotonic() - t0}
    try:
        reply = await http1.request(
            url + "/v1/chat/completions", "POST",
            headers={"authorization": f"Bearer {keys.get()}", "content-type": "application/json"},
            body=item.body, timeout=ABANDON_AFTER_S if item.abandon else 60,
        )
    except http1.Refused:
        rec.update(outcome="down")
    except http1.TimedOut as e:
        rec.update(outcome="abandoned" if item.abandon else "cut", why=str(e))
    except http1.Cut as e:
        rec.update(outcome="cut", why=str(e))
    else:
        rec.update(classify(item, reply))
    rec["end"] = time.monotonic() - t0
    return rec


def classify(item, reply):
    if reply.status == 200:
        usage, done = None, True
        try:
            if item.stream:
                text = reply.body.decode()
                done = text.rstrip().endswith("data: [DONE]")
                for line in text.split("\n"):
                    if line.startswith("data: {"):
                        u = json.loads(line[6:]).get("usage")
                        usage = u or usage
            else:
                usage = reply.json().get("usage")
        except (ValueError, UnicodeDecodeError):
            return {"outcome": "unexpected", "why": "200 with an unreadable body"}
        if not done:
            return {"outcome": "cut", "why": "stream ended before [DONE]"}
        seen = None if usage is None else [usage.get("prompt_tokens"), usage.get("completion_tokens")]
        return {"outcome": "ok", "usage": seen}
    try:
        err = reply.json().get("error", {})
        code = err.get("code") if isinstance(err, dict) else None
    except (ValueError, AttributeError):
        code = None
    if reply.status == 429:
        return {"outcome": "limited", "code": code}
    if reply.status == 503:
        return {"outcome": "unavailable", "code": code}
    return {"outcome": "unexpected", "why": f"{reply.status} {code} {reply.body[:200]!r}"}


async def load(plan, urls, up, keys, concurrency, rate):
    """Sends every planned request, at most `concurrency` in flight and `rate` started per
    second, round-robin over the replicas that are up."""
    sem = asyncio.Semaphore(concurrency)
    t0 = plan.t0
    results = []

    async def one(i, item):
        async with sem:
            n = len(urls)
            r = next((j % n for j in range(i, i + n) if up(j % n)), i % n)
            rec = await send_one(plan, item, urls[r], keys, t0)
            rec["replica"] = r
            results.append(rec)

    tasks = []
    for i, item in enumerate(plan.items):
        wait = t0 + i / rate - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)  # pacing the load, not synchronisation
        tasks.append(asyncio.create_task(one(i, item)))
    await asyncio.gather(*tasks)
    return results


async def chaos(args, writ, redis, plan, events):
    """Kills and restarts replicas, and restarts Redis once, spread over the run."""
    duration = len(plan.items) / args.rate
    kills = args.kills if args.kills is not None else args.replicas
    steps = [("kill", k % args.replicas) for k in range(kills)]
    if not args.no_redis_restart:
        steps.insert(len(steps) // 2, ("redis", None))
    for n, (what, i) in enumerate(steps):
        at = plan.t0 + duration * (n + 1) / (len(steps) + 2)
        if at > time.monotonic():
            await asyncio.sleep(at - time.monotonic())  # the schedule, not synchronisation
        t = time.monotonic() - plan.t0
        if what == "kill":
            await writ.kill(i)
            events.append({"event": "kill", "replica": i, "at": t})
            await writ.start(i)
            events.append({"event": "restarted", "replica": i, "at": time.monotonic() - plan.t0})
        else:
            await redis.kill()
            events.append({"event": "redis_kill", "at": t})
            await redis.start()
            events.append({"event": "redis_back", "at": time.monotonic() - plan.t0})


async def wait_leases_free(writ, deadline_s):
    """Polls the lease count until it is zero; returns the last count seen."""
    deadline = time.monotonic() + deadline_s
    while True:
        held = (await writ.counters())["leases"]
        if held == 0 or time.monotonic() > deadline:
            return held
        await asyncio.sleep(0.2)


async def run(args):
    own = not args.base_url
    work = args.work_dir or tempfile.mkdtemp(prefix="writ-torture-")
    os.makedirs(work, exist_ok=True)
    mock = cluster.Mock(args.upstream_key, args.mock_port)
    redis = writ = None
    try:
        await mock.start()
        plan = Plan(args.requests)
        if own:
            budget = int(plan.total_estimate() * args.budget_fraction)
            redis = cluster.Redis(work, args.redis_bin)
            await redis.start()
            lease_ttl = args.lease_ttl or int(len(plan.items) / args.rate) + 15
            writ = cluster.Writ(work, args.writ_bin, args.replicas, redis.url, mock.url,
                                args.upstream_key, budget, lease_ttl)
            await writ.setup()
            await asyncio.gather(*(writ.start(i) for i in range(args.replicas)))
            urls = writ.urls()
            keys = Keys(cmd=writ.mint_command(), refresh=args.key_refresh)
            up = lambda i: writ.up[i]  # noqa: E731
        else:
            budget = args.budget
            urls = [u.rstrip("/") for u in args.base_url]
            keys = Keys(key=args.key, cmd=args.key_cmd, refresh=args.key_refresh)
            up = lambda i: True  # noqa: E731
        await mock.forbid(keys.get())
        events = []
        plan.t0 = time.monotonic()
        jobs = [load(plan, urls, up, keys, args.concurrency, args.rate)]
        if own:
            jobs.append(chaos(args, writ, redis, plan, events))
        results = (await asyncio.gather(*jobs))[0]
        elapsed = time.monotonic() - plan.t0
        ledger = leases_after_run = leases_after_ttl = settle_failures = None
        if own:
            counters = await writ.counters()
            leases_after_run = counters["leases"]
            leases_after_ttl = await wait_leases_free(writ, lease_ttl + 10)
            ledger = (await writ.counters())["tokens"]
            settle_failures = writ.settle_failures()
        elif args.ledger_cmd:
            out = subprocess.run(shlex.split(args.ledger_cmd), capture_output=True, timeout=60)
            ledger = int(out.stdout.decode().strip())
        served = await mock.served()
        report = judge(plan, results, served, events, budget, ledger=ledger,
                       leases_after_run=leases_after_run, leases_after_ttl=leases_after_ttl,
                       settle_failures=settle_failures, redis_grace=args.redis_grace)
        report["replicas"] = len(urls)
        report["elapsed_s"] = round(elapsed, 1)
        report["work_dir"] = work
        return report
    finally:
        if writ:
            await writ.stop()
        if redis:
            await redis.stop()
        await mock.stop()


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        report = asyncio.run(run(args))
    except Exception as e:  # a harness that cannot run must not print PASS
        print(f"torture: FAIL harness error: {type(e).__name__}: {e}", flush=True)
        return 1
    if args.json:
        print(json.dumps(report), flush=True)
    for line in report["problems"][:20]:
        print(f"  problem: {line}", flush=True)
    verdict = "PASS" if not report["problems"] else "FAIL"
    if verdict == "FAIL":
        print(f"  logs and data kept in {report['work_dir']}", flush=True)
    elif not args.work_dir:
        shutil.rmtree(report["work_dir"], ignore_errors=True)
    s = report["summary"]
    print(f"torture: {verdict} " + " ".join(f"{k}={v}" for k, v in s.items())
          + f" replicas={report['replicas']} elapsed={report['elapsed_s']}s", flush=True)
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
