"""bench/run's refusals table: what a client's requests cost writ full by how they end, beside
an allowed request of the same gateway — the work an agent (or whoever holds a stolen,
expired or forged writ) can make the gateway do without being served.

Each case is a c=32 load of the same chat completion through one writ-full gateway:
allowed with the upstream named (the rows above), allowed with the upstream left for the
writ to choose (x-writ-upstream absent: an SDK pointed at writ as is), refused by the
writ's grants (another model: 403), an expired writ (401), and a writ with its signature
changed (401; writ full's brute-force guard throttles the address after a few).
"""

import json
import os

from loads import wrk
from procs import die, log
from servers import CHAT_BODY, start_writ, writ_cli

# Writs granted the mock alone, so a request that names no upstream is routed by them.
MOCK_ONLY = '[{"type":"writ:llm","upstream":"mock","actions":["chat"],"models":["gpt-4o-mini"]}]'
NAMED = {"x-writ-upstream": "mock"}
ALLOWED = "allowed, upstream named"


def mint(state, agents, n=10) -> dict:
    """Writs for the cases, minted now: the expired ones live 1 s and are used minutes later."""
    short = [writ_cli("token", "mint", "--agent", agents[i % len(agents)], "--grant", MOCK_ONLY, "--ttl", "1s",
                      *state).strip() for i in range(n)]
    mock_only = [writ_cli("token", "mint", "--agent", agents[i % len(agents)], "--grant", MOCK_ONLY, "--ttl",
                          "7200s", *state).strip() for i in range(n)]
    return {"expired": short, "mock_only": mock_only}


def tampered(writ: str) -> str:
    """The writ with one character of its last signature changed (still base64url)."""
    i = len(writ) - 8
    return writ[:i] + ("A" if writ[i] != "A" else "B") + writ[i + 1:]


def run(run_dir, base, tenant, mock, mock_stream, writs, minted, dur) -> list:
    """Loads one fresh writ-full gateway with each case in turn: a list of
    {"case", "status", "rps", "cpu_us"}."""
    def tokens(name, toks):
        path = os.path.join(run_dir, f"tokens-refusals-{name}.txt")
        with open(path, "w") as f:
            f.write("\n".join(toks) + "\n")
        return path

    def body(name, b):
        path = os.path.join(run_dir, f"refusals-{name}.json")
        with open(path, "w") as f:
            json.dump(b, f)
        return path

    ok = body("ok", CHAT_BODY)
    cases = [
        (ALLOWED, 200, tokens("named", writs), ok, NAMED),
        ("allowed, upstream chosen by the writ", 200, tokens("mock-only", minted["mock_only"]), ok, {}),
        ("refused by the writ's grants (403)", 403, tokens("named", writs), body("denied", dict(CHAT_BODY, model="gpt-4o")),
         NAMED),
        ("expired writ (401)", 401, tokens("expired", minted["expired"]), ok, NAMED),
        ("writ with a changed signature (401, then 429)", None, tokens("tampered", [tampered(w) for w in writs]), ok,
         NAMED),
    ]
    proc, port = start_writ(run_dir, "writ-refusals", "full", base, tenant, mock, mock_stream)
    hz = os.sysconf("SC_CLK_TCK")
    out = []
    try:
        for name, status, toks, b, headers in cases:
            ticks = proc.cpu_ticks()
            r = wrk(port, toks, b, headers, 32, dur, run_dir)
            cpu_us = (proc.cpu_ticks() - ticks) * 1e6 / hz / max(1, r["requests"])
            errors = r["connect_errors"] + r["read_errors"] + r["write_errors"] + r["timeouts"]
            # Every answer must be the case's: all 200 (no status errors) or none 200.
            if errors or (status == 200 and r["status_errors"]) or (status != 200 and r["status_errors"] < r["requests"]):
                die(f"refusals, {name}: not every answer was as expected: {r}")
            out.append({"case": name, "rps": r["rps"], "cpu_us": cpu_us})
            log(f"refusals: {name}: {r['rps']:.0f} req/s, {cpu_us:.0f} µs CPU per request")
    finally:
        proc.stop()
    return out


def render(rows) -> list:
    """The refusals table's lines."""
    base = next((r for r in rows if r["case"] == ALLOWED), None)
    lines = ["", "Refusals: writ full loaded at c=32 with requests that end differently (one gateway, in turn); "
             "CPU per request beside the allowed request's.", "",
             "| request | req/s c=32 | CPU per request (µs) | × allowed |", "|---|---:|---:|---:|"]
    for r in rows:
        ratio = f"{r['cpu_us'] / base['cpu_us']:.2f}" if base else "—"
        lines.append(f"| {r['case']} | {r['rps']:,.0f} | {r['cpu_us']:.0f} | {ratio} |")
    return lines
