"""The harness's own checks, on made-up runs: a consistent run passes, and each way a
gateway can get budgets wrong fails. Run with ``python3 -m unittest test_ledger`` here
(crates/writ/tests/torture.rs runs it too)."""

import itertools
import random
import unittest

from ledger import Plan, judge, unsettled_sums


def brute(unsettled, free, capped, cap, uncounted):
    out = set()
    items = [(d, 0) for d in free] + [(d, 1) for d in capped]
    for combo in itertools.combinations(range(len(items)), unsettled):
        if sum(items[i][1] for i in combo) > cap:
            continue
        s = sum(items[i][0] for i in combo)
        for r in range(len(uncounted) + 1):
            for sub in itertools.combinations(uncounted, r):
                out.add(s + sum(sub))
    return sorted(out)


class UnsettledSums(unittest.TestCase):
    def test_matches_brute_force(self):
        rng = random.Random(7)
        for _ in range(400):
            free = [rng.choice([164, 0, -48, 16]) for _ in range(rng.randint(0, 6))]
            capped = [rng.choice([0, -48, 16]) for _ in range(rng.randint(0, 6))]
            uncounted = [rng.choice([164, 100]) for _ in range(rng.randint(0, 2))]
            cap, unsettled = rng.randint(0, 4), rng.randint(0, 6)
            self.assertEqual(unsettled_sums(unsettled, free, capped, cap, uncounted),
                             brute(unsettled, free, capped, cap, uncounted))

    def test_more_unsettled_than_candidates_has_no_total(self):
        self.assertEqual(unsettled_sums(3, [164], [0, 16], 1), [])


class Run:
    """A run of 30 requests without faults: the first 20 answered, the rest refused."""

    def __init__(self):
        self.plan = Plan(30)
        self.results, self.served = [], {"requests": {}, "unauthorized": 0, "bad_requests": 0, "saw_forbidden": 0}
        for n, it in enumerate(self.plan.items):
            rec = {"rid": it.rid, "start": n * 0.1, "end": n * 0.1 + 0.5, "replica": n % 3}
            if n < 20:
                rec.update(outcome="ok", usage=[it.prompt, it.completion])
                self.served["requests"][it.rid] = [[it.prompt, it.completion, True, it.stream]]
            elif it.abandon:
                rec.update(outcome="abandoned")
            else:
                rec.update(outcome="limited", code="rate_limit_exceeded")
            self.results.append(rec)
        self.spent = sum(it.actual for it in self.plan.items[:20])
        self.events = []
        self.budget = self.spent

    def judge(self, **kw):
        args = dict(ledger=self.spent, leases_after_run=0, leases_after_ttl=0, settle_failures=0)
        args.update(kw)
        return judge(self.plan, self.results, self.served, self.events, args.pop("budget", self.budget),
                     **args)["problems"]


class Judge(unittest.TestCase):
    def test_a_consistent_run_passes(self):
        self.assertEqual(Run().judge(), [])

    def test_over_admission_fails(self):
        run = Run()
        problems = run.judge(budget=run.spent - 1000)
        self.assertTrue(any("over-admitted" in p for p in problems), problems)

    def test_a_ledger_that_differs_from_what_was_served_fails(self):
        run = Run()
        for off in (-1, 1, 16, -164):
            problems = run.judge(ledger=run.spent + off)
            self.assertTrue(any("ledger" in p for p in problems), (off, problems))

    def test_a_lease_left_held_fails(self):
        self.assertTrue(Run().judge(leases_after_ttl=1))
        problems = Run().judge(leases_after_run=1)
        self.assertTrue(any("unsettled" in p for p in problems), problems)

    def test_a_gateway_that_never_refuses_fails(self):
        run = Run()
        for r in run.results:
            if r["outcome"] == "limited":
                r["outcome"] = "unexpected"
        self.assertTrue(any("429" in p for p in run.judge()))

    def test_a_call_served_twice_or_a_refusal_forwarded_fails(self):
        run = Run()
        first = run.plan.items[0]
        run.served["requests"][first.rid].append([first.prompt, first.completion, True, first.stream])
        self.assertTrue(any("2 times" in p for p in run.judge()))
        run = Run()
        last = run.plan.items[-1]
        run.served["requests"][last.rid] = [[last.prompt, last.completion, True, last.stream]]
        self.assertTrue(any("reached the upstream" in p for p in run.judge()))

    def test_usage_changed_on_the_way_fails(self):
        run = Run()
        run.results[0]["usage"] = [1, 2]
        self.assertTrue(any("client saw usage" in p for p in run.judge()))

    def test_the_callers_key_reaching_the_upstream_fails(self):
        run = Run()
        run.served["saw_forbidden"] = 1
        self.assertTrue(any("caller's key" in p for p in run.judge()))

    def test_a_cut_call_may_leave_its_reservation_and_lease_but_no_more(self):
        run = Run()
        run.events = [{"event": "kill", "replica": 1, "at": 0.2}]
        cut = run.plan.items[1]  # one that over-runs its estimate
        self.assertNotEqual(cut.actual, cut.estimate)
        run.results[1].update(outcome="cut", why="reset")
        # Unsettled: its estimate, not its usage, is in the ledger, and it holds a lease.
        ledger = run.spent - cut.actual + cut.estimate
        self.assertEqual(run.judge(ledger=ledger, leases_after_run=1), [])
        # Settled before the kill: its usage, and no lease.
        self.assertEqual(run.judge(leases_after_run=0), [])
        # Two leases, or the estimate without a lease, are not what one cut call leaves.
        self.assertTrue(run.judge(ledger=ledger, leases_after_run=2))
        self.assertTrue(run.judge(ledger=ledger, leases_after_run=0))

    def test_an_abandoned_call_counts_its_estimate_and_frees_its_lease(self):
        run = Run()
        ab = run.plan.items[10]
        self.assertTrue(ab.abandon)
        run.results[10].update(outcome="abandoned")
        ledger = run.spent - ab.actual + ab.estimate
        self.assertEqual(run.judge(ledger=ledger), [])
        self.assertTrue(run.judge(ledger=ledger, leases_after_run=1), "a lease kept by an abandoned call")
        self.assertTrue(run.judge(), "usage instead of the estimate")

    def test_a_cut_without_a_kill_fails(self):
        run = Run()
        run.results[0]["outcome"] = "cut"
        self.assertTrue(any("no kill" in p for p in run.judge()))


if __name__ == "__main__":
    unittest.main()
