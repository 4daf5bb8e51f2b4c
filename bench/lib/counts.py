"""bench/run --count: instructions (callgrind) and system calls (strace) per request."""

import os
import re
import signal
import subprocess
import time

from loads import wrk_pass
from procs import die


COUNT_TOOLS = ("valgrind", "callgrind_control", "callgrind_annotate", "strace")


def count_row(run_dir, name, start, tokens, body, n) -> dict:
    """What one request costs a row in counts rather than time, so that neither moves
    with the host's load: user-space instructions (callgrind) and system calls (strace),
    each over a pass of `n` requests at c=1 after a pass of `n` to warm up. `start(slug,
    wrap, start_timeout)` starts the row's server (under `wrap`) and returns (Proc, port)."""
    headers = {"x-writ-upstream": "mock"}
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    # 1. Instructions: the server runs under callgrind, counting only during the pass.
    out = os.path.join(run_dir, f"{slug}-callgrind.out")
    proc, port = start(f"{slug}-callgrind", ["valgrind", "--tool=callgrind", "--instr-atstart=no",
                                             f"--callgrind-out-file={out}"], 300)
    pid = str(proc.p.pid)
    wrk_pass(port, tokens, body, headers, 1, run_dir, n, cap=1800)
    for cmd in (["-i", "on"], None, ["-i", "off"], ["-d"]):
        if cmd is None:
            wrk_pass(port, tokens, body, headers, 1, run_dir, n, cap=1800)
            continue
        subprocess.run(["callgrind_control", *cmd, pid], capture_output=True, check=True, timeout=120)
    dump = f"{out}.1"
    deadline = time.time() + 120
    while not os.path.exists(dump):
        if time.time() > deadline:
            die(f"{name}: callgrind wrote no dump")
        time.sleep(0.2)
    proc.stop()
    annotated = subprocess.run(["callgrind_annotate", "--threshold=100", dump], capture_output=True,
                               text=True, check=True, timeout=300).stdout
    total = sha = 0
    for line in annotated.splitlines():
        fields = line.split()
        if not fields or not fields[0][0].isdigit():
            continue
        count = int(fields[0].replace(",", ""))
        if "PROGRAM TOTALS" in line:
            total = count
        elif "sha2::sha256::compress256" in line:
            sha += count
    if not total:
        die(f"{name}: no instruction total in {dump}")
    # 2. System calls: the server as it runs, strace attached for the pass.
    proc, port = start(f"{slug}-strace", (), 30)
    wrk_pass(port, tokens, body, headers, 1, run_dir, n)
    table = os.path.join(run_dir, f"{slug}-strace.txt")
    tracer = subprocess.Popen(["strace", "-f", "-c", "-o", table, "-p", str(proc.p.pid)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    # With -f, strace attaches to every thread of the process at once, then says so.
    while "attached" not in (line := tracer.stderr.readline()):
        if not line:
            die(f"{name}: strace ended before attaching")
    wrk_pass(port, tokens, body, headers, 1, run_dir, n)
    tracer.send_signal(signal.SIGINT)
    tracer.wait(timeout=60)
    proc.stop()
    calls = {}
    for line in open(table):
        fields = line.split()
        # "% time  seconds  usecs/call  calls  [errors]  syscall"
        if len(fields) >= 5 and fields[0][0].isdigit() and fields[-1] != "total":
            calls[fields[-1]] = int(fields[3])
    return {"row": name, "instructions": total / n, "sha": sha / n, "calls": {k: v / n for k, v in calls.items()}}


def render_counts(counts, n) -> str:
    names = ["writev", "recvfrom", "epoll_wait", "pwrite64", "fcntl", "futex"]
    lines = [
        f"Counts per request (c=1, a pass of {n:,} requests after {n:,} to warm up; counts, not times, so "
        "they hold on a busy host). Instructions: user space, callgrind; valgrind has no SHA extensions, so "
        "SHA-256 runs in software there and its share is shown apart (with the CPU's SHA-NI, as served, it "
        "costs a fraction of that). System calls: strace -f -c over every thread.",
        "",
        "| row | instructions | of which SHA-256 (software) | instructions without SHA-256 | "
        + " | ".join(names) + " | other calls |",
        "|---|---:|---:|---:|" + "---:|" * len(names) + "---:|",
    ]
    for c in counts:
        other = sum(v for k, v in c["calls"].items() if k not in names)
        lines.append(f"| {c['row']} | {c['instructions']:,.0f} | {c['sha']:,.0f} | {c['instructions'] - c['sha']:,.0f} | "
                     + " | ".join(f"{c['calls'].get(k, 0):.2f}" for k in names) + f" | {other:.2f} |")
    return "\n".join(lines) + "\n"
