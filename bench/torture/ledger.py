"""The torture harness's plan (each request's body, its gateway estimate and the exact
usage the mock will report) and its judgement (the checks behind the verdict).

Writ's reservation rule, which the estimate and the bound follow: before forwarding, a
request reserves ``ceil(body bytes / 4) + max_tokens`` tokens (all or nothing, refused if
used + estimate > budget); when the call ends the reservation is settled with the usage
reported (an over-run charged, an under-run given back). A reservation whose settlement
never happens (replica killed, Redis unreachable when settling) stays charged as reserved.

The bound. Let t* be the last admission, e_i a request's estimate and a_i its usage. At t*
the counter, Σ settled a_i + Σ unsettled e_i, is at most the budget B. Every request the
upstream served was admitted by t*, so

    spent = Σ a_i ≤ B + Σ_{i not settled by t*} max(0, a_i - e_i)

Writ settles a call before the client reads its last byte, so a call the client saw
complete before the latest start T of any served request (T ≤ t*) was settled by t*; the
sum runs over every other served request (and those whose settlement may have met the
Redis outage). That is the "Σ in-flight over-runs" the verdict checks against.
"""

import json
import math

OVERRUN = 48  # input tokens the mock reports beyond the gateway's byte estimate
UNDERRUN = 16  # output tokens short of the request's cap
ABANDON_AFTER_S = 0.6  # an abandoning client closes its connection after this long ...
ABANDON_UPSTREAM_MS = 2500  # ... while the upstream takes this long to answer


class Item:
    __slots__ = ("rid", "body", "stream", "max_tokens", "prompt", "completion", "estimate", "actual", "abandon")


class Plan:
    """Every request of a run, built deterministically from its index: half streams, all
    with the same estimate (bodies padded to one length, one output cap), so which of the
    cut calls left a reservation unsettled does not change what they add up to. A third use
    exactly their estimate, a third report OVERRUN more input tokens than the byte
    estimate (a tokenizer that counts more), a third stop UNDERRUN output tokens short of
    their cap."""

    BODY_BYTES = 400
    MAX_TOKENS = 64

    def __init__(self, n):
        self.items = [self._item(i) for i in range(n)]
        self.by_rid = {it.rid: it for it in self.items}
        self.t0 = 0.0

    @classmethod
    def _item(cls, i):
        it = Item()
        it.rid = f"r{i:07d}"
        it.stream = i % 2 == 1
        it.max_tokens = cls.MAX_TOKENS
        kind = i % 3  # 0: exact, 1: input over-runs the estimate, 2: output stops early
        it.completion = it.max_tokens - (UNDERRUN if kind == 2 else 0)
        # One call in twenty (never a stream) is abandoned by its client before the upstream
        # answers: the gateway must still release its lease.
        it.abandon = i % 20 == 10
        ms = ABANDON_UPSTREAM_MS if it.abandon else 100 + (i * 37) % 500

        def body(prompt, pad):
            text = f"torture rid={it.rid} in={prompt:06d} out={it.completion:06d} ms={ms:06d} {'x' * pad}"
            req = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}],
                   "max_tokens": it.max_tokens}
            if it.stream:
                req["stream"] = True
                req["stream_options"] = {"include_usage": True}
            return json.dumps(req, separators=(",", ":")).encode()

        # The marker is fixed-width: the body's length does not depend on the usage in it.
        pad = cls.BODY_BYTES - len(body(0, 0))
        input_estimate = math.ceil(cls.BODY_BYTES / 4)
        it.prompt = input_estimate + (OVERRUN if kind == 1 else 0)
        it.body = body(it.prompt, pad)
        assert len(it.body) == cls.BODY_BYTES
        it.estimate = input_estimate + it.max_tokens
        it.actual = it.prompt + it.completion
        return it

    def total_estimate(self):
        return sum(it.estimate for it in self.items)


def unsettled_sums(unsettled, free, capped, cap, uncounted=()):
    """Every total that choosing exactly `unsettled` candidates can add, where a candidate
    adds its delta (what counting its reservation instead of its usage adds): any of the
    `free` deltas, and at most `cap` of the `capped` ones; plus any of the `uncounted`
    ones, which hold no lease (not chosen among the `unsettled`). The deltas take few
    distinct values (one estimate; three kinds of usage): a bounded knapsack per count,
    with each count's reachable totals as the bits of an integer."""
    shift = -min([0, *free, *capped])  # every value made >= 0; undone per count

    def kinds(ds):
        out = {}
        for d in ds:
            out[d + shift] = out.get(d + shift, 0) + 1
        return sorted(out.items())

    def knapsack(group, limit):
        # sets[c]: bit s set when c candidates of the group can add s (shifted).
        sets = [1] + [0] * limit
        for value, n in kinds(group):
            new = list(sets)
            for c in range(limit + 1):
                if not sets[c]:
                    continue
                for k in range(1, min(n, limit - c) + 1):
                    new[c + k] |= sets[c] << (k * value)
            sets = new
        return sets

    def times(x, y):
        """The totals of one of x plus one of y, as bits."""
        out = 0
        while x:
            low = x & -x
            out |= y << (low.bit_length() - 1)
            x ^= low
        return out

    capped_sets = knapsack(capped, min(cap, len(capped), unsettled))
    free_sets = knapsack(free, unsettled)
    bits = 0
    for q, bits_q in enumerate(capped_sets):
        if 0 <= unsettled - q < len(free_sets):
            bits |= times(bits_q, free_sets[unsettled - q])
    for d in uncounted:  # estimates, never negative
        bits |= bits << d
    out = []
    while bits:
        low = bits & -bits
        out.append(low.bit_length() - 1 - unsettled * shift)
        bits ^= low
    return out


def _overlaps(rec, lo, hi):
    return rec["start"] <= hi and rec["end"] >= lo


def judge(plan, results, served, events, budget, ledger=None, leases_after_run=None,
          leases_after_ttl=None, settle_failures=None, redis_grace=2.0):
    """Checks a run; returns {"problems": [...], "summary": {...}, ...}."""
    problems = []
    by_rid = {r["rid"]: r for r in results}
    count = {}
    for r in results:
        count[r["outcome"]] = count.get(r["outcome"], 0) + 1
    got = served["requests"]

    # The upstream: the gateway's credential on every request, never the caller's key.
    if served["unauthorized"]:
        problems.append(f"{served['unauthorized']} upstream requests without the injected credential")
    if served["bad_requests"]:
        problems.append(f"{served['bad_requests']} malformed upstream requests")
    if served["saw_forbidden"]:
        problems.append(f"{served['saw_forbidden']} upstream requests carried the caller's key")
    for rid, entries in got.items():
        if rid not in plan.by_rid:
            problems.append(f"the upstream served {rid}, which was never sent")
        elif len(entries) > 1:
            problems.append(f"{rid} reached the upstream {len(entries)} times")

    # The Redis outage, widened by the grace and by the last 503 seen.
    kills = [e for e in events if e["event"] == "kill"]
    rk = [e["at"] for e in events if e["event"] == "redis_kill"]
    rb = [e["at"] for e in events if e["event"] == "redis_back"]
    window = None
    if rk:
        last_503 = max([r["end"] for r in results if r["outcome"] == "unavailable"] or [rb[0]])
        window = (rk[0], max(rb[0], last_503) + redis_grace)

    def in_window(r):
        return window is not None and _overlaps(r, *window)

    def cut_by_kill(r):
        return any(k["replica"] == r.get("replica") and r["start"] <= k["at"] + 1.0 and r["end"] >= k["at"]
                   for k in kills)

    # What each client saw against what the upstream served.
    ambiguous = []
    for r in results:
        it, o = plan.by_rid[r["rid"]], r["outcome"]
        entries = got.get(r["rid"], [])
        if o == "ok":
            if not entries:
                problems.append(f"{r['rid']}: answered 200 but never reached the upstream")
            elif r.get("usage") != [it.prompt, it.completion]:
                problems.append(f"{r['rid']}: client saw usage {r.get('usage')}, upstream reported "
                                f"{[it.prompt, it.completion]}")
            if in_window(r):
                ambiguous.append(r)
        elif o in ("limited", "unavailable", "down"):
            if entries:
                problems.append(f"{r['rid']}: refused ({o}) yet reached the upstream")
            if o == "unavailable":
                if not in_window(r):
                    problems.append(f"{r['rid']}: 503 outside the Redis outage")
                else:
                    ambiguous.append(r)
            if o == "down" and not kills:
                problems.append(f"{r['rid']}: connection refused with no replica killed")
        elif o == "abandoned":
            if not it.abandon:
                problems.append(f"{r['rid']}: no answer within its timeout")
            if cut_by_kill(r) or in_window(r):
                # Its settlement on abandonment may have died with its replica or failed.
                ambiguous.append(r)
        elif o == "cut":
            if not cut_by_kill(r):
                problems.append(f"{r['rid']}: cut ({r.get('why')}) with no kill of its replica")
            ambiguous.append(r)
        else:
            problems.append(f"{r['rid']}: unexpected answer: {r.get('why')}")
    if not count.get("limited"):
        problems.append("the budget was never reached: no request was refused with 429")
    if not count.get("ok"):
        problems.append("no request succeeded")

    # Spend admitted against the budget plus the bound.
    spent = sum(plan.by_rid[rid].actual * len(e) for rid, e in got.items() if rid in plan.by_rid)
    amb = {r["rid"] for r in ambiguous}
    last_start = max((by_rid[rid]["start"] for rid in got if rid in by_rid), default=0.0)
    in_flight = [rid for rid in got if rid in by_rid and not (
        by_rid[rid]["outcome"] == "ok" and by_rid[rid]["end"] < last_start and rid not in amb)]
    slack = sum(max(0, plan.by_rid[rid].actual - plan.by_rid[rid].estimate) for rid in in_flight)
    bound = budget + slack
    if spent > bound:
        problems.append(f"over-admitted: spent {spent} > budget {budget} + in-flight over-runs {slack}")

    # The ledger. Every call that ended normally counts its usage exactly. A call cut by a
    # kill, a 503 in the Redis outage and a call answered during it may instead have left a
    # reservation that was never settled, counting its estimate (or, if it never reached
    # the upstream, nothing). With leases counted right after the run (the lease TTL
    # outlives it), the number of those unsettled reservations is known exactly: each
    # holds its concurrency lease, which only settling releases.
    summary_ledger = {}
    if ledger is not None:
        certain = sum(plan.by_rid[r["rid"]].actual for r in results
                      if r["outcome"] == "ok" and r["rid"] not in amb)
        # A call its client abandoned while the upstream worked is settled with its
        # estimate (the gateway never learns its usage) and releases its lease; one
        # abandoned before it reached the upstream may not have reserved at all. Settled or
        # not, a served one counts its estimate.
        def settled_as(r):
            it = plan.by_rid[r["rid"]]
            return it.estimate if r["outcome"] == "abandoned" else it.actual
        base = certain + sum(settled_as(r) for r in ambiguous if r["rid"] in got)
        abandoned = [r for r in results if r["outcome"] == "abandoned" and r["rid"] not in amb]
        base += sum(plan.by_rid[r["rid"]].estimate for r in abandoned if r["rid"] in got)
        uncounted = [plan.by_rid[r["rid"]].estimate for r in abandoned if r["rid"] not in got]
        # What counting a candidate's reservation instead adds to the base. A call answered
        # during the outage left its reservation unsettled only if its settlement failed, and
        # the replicas log each failure: at most that many of those.
        def delta(r):
            return plan.by_rid[r["rid"]].estimate - (settled_as(r) if r["rid"] in got else 0)
        free = [delta(r) for r in ambiguous if r["outcome"] != "ok"]
        capped = [delta(r) for r in ambiguous if r["outcome"] == "ok"]
        cap = len(capped) if settle_failures is None else settle_failures
        if leases_after_run is not None:
            unsettled = leases_after_run
            sums = unsettled_sums(unsettled, free, capped, cap, uncounted)
            if not sums:
                problems.append(f"{unsettled} reservations left unsettled, more than the {len(free)} "
                                f"calls cut and {min(cap, len(capped))} failed settlements could leave")
                lo = hi = base
            else:
                lo, hi = base + sums[0], base + sums[-1]
                if ledger - base not in set(sums):
                    problems.append(f"ledger {ledger} is not the usage of every settled call plus the "
                                    f"estimates of exactly {unsettled} unsettled ones (base {base})")
        else:
            deltas = free + capped + uncounted
            lo = base + sum(d for d in deltas if d < 0)
            hi = base + sum(d for d in deltas if d > 0)
        if not lo <= ledger <= hi:
            problems.append(f"ledger {ledger} outside [{lo}, {hi}] (calls that ended normally {certain}, "
                            f"{len(ambiguous)} cut or in the Redis outage)")
        summary_ledger = {"ledger": ledger, "ledger_exact": certain, "ledger_lo": lo, "ledger_hi": hi}
    if leases_after_ttl is not None and leases_after_ttl != 0:
        problems.append(f"{leases_after_ttl} concurrency leases still held after the lease TTL")

    summary = {
        "requests": len(results),
        "ok": count.get("ok", 0),
        "limited": count.get("limited", 0),
        "unavailable": count.get("unavailable", 0),
        "cut": count.get("cut", 0),
        "down": count.get("down", 0),
        "abandoned": count.get("abandoned", 0),
        "budget": budget,
        "spent": spent,
        "bound": bound,
        "over_budget": spent - budget,
        **summary_ledger,
        "leases_after_run": leases_after_run,
        "leases_after_ttl": leases_after_ttl,
        "ambiguous": len(ambiguous),
        "kills": len(kills),
        "redis_restarts": len(rk),
        "settle_failures": settle_failures,
    }
    return {"problems": problems, "summary": summary, "events": events}
