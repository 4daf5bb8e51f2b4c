"""bench/run's JIT row: agents mint writs at a writ-full gateway's token endpoint
(client_credentials) and use each one k times, at c=32; with `private_key_jwt` (EdDSA
assertions, each with a fresh jti) and with a client secret (`client_secret_post`).

The load generator is wrk with bench/lib/jit.lua; assertions are signed beforehand by
bench/lib/assertions.py (two processes, one file per wrk thread). Its own ceiling is
measured in the same run against nginx answering the token endpoint and the chat
completion with canned bodies.
"""

import http.client
import json
import os
import shutil
import subprocess
import time
import urllib.parse

from loads import wrk_pass
from procs import die, free_port, log
from servers import COMPLETION, HERE, VENV, start_nginx, start_writ, writ_cli

JIT_AGENTS = 10
# Seconds a JIT writ lives (`expires_in`): the pass over the writs minted by the
# mint-only load uses them within this.
WRIT_TTL = 60
# Seconds an assertion is valid (the endpoint accepts up to 3 600): it outlives the row.
ASSERTION_LIFETIME = 600
# Assertions signed per second of a mint-only load (split over wrk's two threads); a
# thread that runs out stops, and the row then says its figure is a lower bound.
POOL_RATE = 15_000
# Writs of the mint-only load used once each in the first-use pass, at most: at 1 000
# first uses a second (a busy host) the last is used well within WRIT_TTL of its mint.
FIRST_USE_CAP = 15_000
KS = (0, 1, 3)
THREADS = 2
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
GRANT = '[{"type":"writ:llm","upstream":"mock","actions":["chat"],"models":["gpt-4o-mini"]}]'
CEILING = '{"type":"writ:llm","upstream":"mock"}'
USE_HEADERS = {"x-writ-upstream": "mock"}
PKJWT = "private_key_jwt"
SECRET = "client_secret_post"
GENERATOR = "load generator ceiling (nginx, canned answers)"


def form(with_assertion: bool) -> str:
    fields = [("grant_type", "client_credentials")]
    if with_assertion:
        fields.append(("client_assertion_type", ASSERTION_TYPE))
    fields += [("authorization_details", GRANT), ("expires_in", str(WRIT_TTL))]
    return urllib.parse.urlencode(fields)


def register_agents(run_dir, base, base_cfg, pub_pem) -> tuple:
    """A copy of the base data directory with the JIT agents, each with the run's public
    key and a generated client secret: (data directory, {agent: secret})."""
    data = os.path.join(run_dir, "jit-base")
    shutil.copytree(base, data)
    secrets = {}
    for i in range(JIT_AGENTS):
        name = f"jit-{i:04d}"
        out = writ_cli("agent", "add", name, "--ceiling", CEILING, "--max-ttl", f"{WRIT_TTL}s",
                       "--public-key", pub_pem, "--generate-secret", "--config", base_cfg, "--data-dir", data)
        secret = next((line.split(":", 1)[1].strip() for line in out.splitlines()
                       if line.startswith("client_secret:")), None)
        if not secret:
            die(f"writ agent add {name} --generate-secret printed no client_secret")
        secrets[name] = secret
    return data, secrets


def sign_pool(run_dir, key_pem, token_url, agents, per_thread, tag) -> str:
    """`per_thread` fresh assertions for each wrk thread, signed in parallel: the prefix of
    the files (PREFIX.1, PREFIX.2)."""
    prefix = os.path.join(run_dir, f"assertions-{tag}")
    procs = [subprocess.Popen([os.path.join(VENV, "bin", "python"), os.path.join(HERE, "assertions.py"), key_pem,
                               token_url, ",".join(agents), str(per_thread), str(ASSERTION_LIFETIME),
                               f"{tag}-{t}-{time.time_ns()}", f"{prefix}.{t}"], stderr=subprocess.PIPE, text=True)
             for t in range(1, THREADS + 1)]
    for p in procs:
        _, err = p.communicate(timeout=600)
        if p.returncode != 0:
            die(f"signing assertions failed: {err.strip()[-500:]}")
    return prefix


def load(port, k, creds, once, form_file, body, dur, run_dir, proc=None, save=None) -> dict:
    """One wrk load of the JIT script: mints, uses and their rates over its duration."""
    out = os.path.join(run_dir, f"jit-{time.time_ns()}.json")
    env = dict(os.environ, BENCH_JIT_K=str(k), BENCH_JIT_CREDS=creds,
               BENCH_JIT_ONCE="1" if once else "0", BENCH_JIT_FORM=form_file, BENCH_BODY=body,
               BENCH_HEADERS="|".join(f"{name}: {value}" for name, value in USE_HEADERS.items()),
               BENCH_JIT_SAVE=save or "", BENCH_OUT=out)
    argv = ["wrk", f"-t{THREADS}", "-c32", f"-d{int(dur)}s", "--timeout", "10s",
            "-s", os.path.join(HERE, "jit.lua"), f"http://127.0.0.1:{port}"]
    ticks = proc.cpu_ticks() if proc else 0
    try:
        subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                       timeout=dur + 30, check=True)
    except subprocess.CalledProcessError as e:
        die(f"wrk (JIT) failed: {e.stderr.decode(errors='replace')}")
    except subprocess.TimeoutExpired:
        die("wrk (JIT) did not finish in time")
    with open(out) as f:
        r = json.load(f)
    errors = r["connect_errors"] + r["read_errors"] + r["write_errors"] + r["timeouts"]
    if r["bad"] or errors:
        die(f"JIT load k={k}: {r['bad']} refused, {errors} socket errors; first refusal: {r['first_bad']}")
    secs = r["seconds"]
    r.update(mint_rps=r["mints"] / secs, use_rps=r["uses"] / secs, rps=(r["mints"] + r["uses"]) / secs, k=k)
    if proc:
        r["cpu_us"] = (proc.cpu_ticks() - ticks) * 1e6 / os.sysconf("SC_CLK_TCK") / max(1, r["mints"] + r["uses"])
    return r


def check_mint(port, form_text, token_url) -> None:
    """One mint and one use answer 200, so that a refused configuration fails with its reason."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("POST", "/oauth2/token", form_text, {"Content-Type": "application/x-www-form-urlencoded"})
    resp = conn.getresponse()
    data = resp.read()
    if resp.status != 200 or b"access_token" not in data:
        die(f"JIT: the token endpoint ({token_url}) answered {resp.status}: {data[:300]!r}")
    writ = json.loads(data)["access_token"]
    conn.request("POST", "/v1/chat/completions", json.dumps({"model": "gpt-4o-mini", "messages": [
        {"role": "user", "content": "hi"}]}), dict(USE_HEADERS, Authorization=f"Bearer {writ}",
                                                   **{"Content-Type": "application/json"}))
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    if resp.status != 200:
        die(f"JIT: a freshly minted writ was refused: {resp.status} {data[:300]!r}")


def canned_servers(port, writ_len) -> str:
    """nginx answering a token request with a canned token response (an access_token as long
    as a writ) and a chat completion with the mock's: the load generator's ceiling."""
    token = json.dumps({"access_token": "x" * writ_len, "token_type": "Bearer", "expires_in": WRIT_TTL,
                        "issued_token_type": "urn:ietf:params:oauth:token-type:access_token"},
                       separators=(",", ":"))
    completion = json.dumps(COMPLETION, separators=(",", ":"))
    return f"""
  server {{
    listen 127.0.0.1:{port};
    location = /oauth2/token {{ default_type application/json; return 200 '{token}'; }}
    location = /v1/chat/completions {{ default_type application/json; return 200 '{completion}'; }}
  }}
"""


def run(run_dir, base, base_cfg, pub_pem, key_pem, tenant, mock, mock_stream, body, dur, writ_len) -> dict:
    """The JIT row: the generator's ceiling, then per client authentication a fresh
    writ-full gateway loaded at k = 0, 1 and 3 (c=32), and after the mint-only load a pass
    using each writ it minted once (the first use alone). Returns the figures to render."""
    t0 = time.time()
    data, secrets = register_agents(run_dir, base, base_cfg, pub_pem)
    agents = list(secrets)
    files = {}
    for name, text in (("assertion", form(True)), ("secret", form(False))):
        files[name] = os.path.join(run_dir, f"jit-form-{name}.txt")
        with open(files[name], "w") as f:
            f.write(text)
    secret_lines = os.path.join(run_dir, "jit-secrets.txt")
    with open(secret_lines, "w") as f:
        for a, s in secrets.items():
            f.write(urllib.parse.urlencode([("client_id", a), ("client_secret", s)]) + "\n")
    out = {"rows": [], "first_use": None}

    # The generator's ceiling: assertions go round (nginx checks none of them).
    cport = free_port()
    canned = start_nginx(run_dir, "jit-canned", canned_servers(cport, writ_len), cport)
    pool = sign_pool(run_dir, key_pem, f"http://127.0.0.1:{cport}/oauth2/token", agents, 5_000, "canned")
    for k in KS:
        log(f"JIT: load generator ceiling, k={k}")
        r = load(cport, k, pool, False, files["assertion"], body, dur, run_dir)
        out["rows"].append(dict(r, variant=GENERATOR))
    canned.stop()

    for variant in (PKJWT, SECRET):
        slug = "jit-" + variant.replace("_", "-")
        proc, port = start_writ(run_dir, f"writ-{slug}", "full", data, tenant, mock, mock_stream)
        token_url = f"http://127.0.0.1:{port}/oauth2/token"
        check_mint(port, open(files["secret"]).read() + "&" + open(secret_lines).readline().strip(), token_url)
        log(f"JIT {variant}: warm-up (client secrets, k=1)")
        load(port, 1, secret_lines, False, files["secret"], body, 1, run_dir)
        rate0 = None
        for k in KS:
            save = os.path.join(run_dir, f"{slug}-writs") if k == 0 and variant == PKJWT else None
            if variant == PKJWT:
                # Every assertion is used once: enough for the load at POOL_RATE mints/s, or
                # after the mint-only load, 1.3× its mint rate (mints with uses go no faster).
                rate = POOL_RATE if rate0 is None else max(1_000, 1.3 * rate0)
                per_thread = int(rate * dur * 0.55) + 100
                log(f"JIT {variant}: signing {per_thread * THREADS:,} assertions for k={k}")
                creds = sign_pool(run_dir, key_pem, token_url, agents, per_thread, f"{slug}-{k}")
                r = load(port, k, creds, True, files["assertion"], body, dur, run_dir, proc, save)
            else:
                r = load(port, k, secret_lines, False, files["secret"], body, dur, run_dir, proc)
            if k == 0:
                rate0 = r["mint_rps"]
            log(f"JIT {variant}, k={k}: {r['mint_rps']:,.0f} mints/s, {r['use_rps']:,.0f} uses/s"
                + (" (assertions ran out: a lower bound)" if r["exhausted"] else ""))
            out["rows"].append(dict(r, variant=variant))
            if save:
                tokens = os.path.join(run_dir, f"{slug}-first-use.txt")
                n = 0
                with open(tokens, "w") as f:
                    for t in range(1, THREADS + 1):
                        for line in open(f"{save}.{t}"):
                            if n < FIRST_USE_CAP and line.strip():
                                f.write(line)
                                n += 1
                log(f"JIT {variant}: first use of {n:,} writs just minted")
                rps = wrk_pass(port, tokens, body, USE_HEADERS, 32, run_dir, n)
                out["first_use"] = {"variant": variant, "writs": n, "rps": rps}
        out.setdefault("rss_kb", {})[variant] = proc.peak_rss_kb()
        proc.stop()
    log(f"JIT row done in {time.time() - t0:.0f} s")
    return out


def render(jit, cached) -> tuple:
    """The JIT table's lines and its targets as (what, ok or None, measured); `cached` is the
    writ full row's c=32 req/s of the same run (None if it did not run)."""
    ratio = lambda v: f"{v / cached:.2f}×" if cached else "—"  # noqa: E731
    lines = [
        "", f"JIT: agents mint through the token endpoint (client_credentials) and use each writ k times, c=32, "
        f"against a fresh writ-full gateway per client authentication (writs live {WRIT_TTL} s); ratios are to "
        "writ full's c=32 req/s above (every writ cached).", "",
        "| client authentication | k | mints/s | uses/s | uses ÷ cached writ full | req/s (both) "
        "| CPU per request (µs) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    # The gateways first, the generator's ceiling under them.
    for r in sorted(jit["rows"], key=lambda r: r["variant"] == GENERATOR):
        low = " (≥: assertions ran out)" if r.get("exhausted") else ""
        cpu = f"{r['cpu_us']:.0f}" if "cpu_us" in r else "—"
        uses = f"{r['use_rps']:,.0f}" if r["k"] else "—"
        vs = ratio(r["use_rps"]) if r["k"] and r["variant"] != GENERATOR else "—"
        lines.append(f"| {r['variant']} | {r['k']} | {r['mint_rps']:,.0f}{low} | {uses} | {vs} "
                     f"| {r['rps']:,.0f} | {cpu} |")
    fu = jit.get("first_use")
    if fu:
        lines += ["", f"First use alone: {fu['writs']:,} writs minted by the {fu['variant']} mint-only load, "
                  f"each used once right after it (c=32): {fu['rps']:,.0f} req/s, {ratio(fu['rps'])} cached."]
    if jit.get("rss_kb"):
        lines += ["", "Peak RSS of the JIT gateways: " + ", ".join(
            f"{v} {kb / 1024:.1f} MiB" for v, kb in jit["rss_kb"].items()) + "."]
    by = {(r["variant"], r["k"]): r for r in jit["rows"]}
    targets = []
    pk, sec = by.get((PKJWT, 0)), by.get((SECRET, 0))
    if pk:
        targets.append((f"token endpoint ≥ 8 000 mints/s with {PKJWT}", pk["mint_rps"] >= 8000,
                        f"{'≥ ' if pk.get('exhausted') else ''}{pk['mint_rps']:,.0f}/s"))
    if pk and sec:
        targets.append((f"client secret mints no slower than {PKJWT}", sec["mint_rps"] >= pk["mint_rps"],
                        f"{sec['mint_rps'] / pk['mint_rps']:.2f}× ({sec['mint_rps']:,.0f}/s)"))
    if fu and cached:
        k1 = by.get((PKJWT, 1))
        mixed = f"; k=1 uses beside their mints {k1['use_rps'] / cached:.2f}×" if k1 else ""
        targets.append(("first-use throughput ≥ 0.5× cached-writ throughput", fu["rps"] >= 0.5 * cached,
                        f"{fu['rps'] / cached:.2f}× first use alone{mixed}"))
    return lines, targets
