"""bench/run's processes: the log, dying cleanly, free ports, and the servers it starts
(each in its own process group, so that stopping one stops all its descendants)."""

import os
import signal
import socket
import subprocess
import sys
import time


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def die(msg: str) -> None:
    log("FAILED: " + msg)
    stop_all()
    sys.exit(1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def reachable(addr) -> bool:
    try:
        socket.create_connection(addr, timeout=1).close()
        return True
    except OSError:
        return False


# ---------------------------------------------------------------- processes

PROCS: list = []


class Proc:
    def __init__(self, name, argv, logfile, env=None, cwd=None):
        self.name = name
        self.log = logfile
        self.out = open(logfile, "ab")
        self.p = subprocess.Popen(argv, stdout=self.out, stderr=subprocess.STDOUT, env=env, cwd=cwd,
                                  start_new_session=True)
        PROCS.append(self)

    def alive(self) -> bool:
        return self.p.poll() is None

    def tree(self) -> list:
        """This process and all its descendants."""
        children = {}
        for pid, _, fields in proc_stats():
            try:
                children.setdefault(int(fields[1]), []).append(pid)
            except (ValueError, IndexError):
                continue
        out, todo = [], [self.p.pid]
        while todo:
            pid = todo.pop()
            out.append(pid)
            todo.extend(children.get(pid, []))
        return out

    def _sum_over_tree(self, read) -> int:
        """`read(pid)` summed over the process and its descendants (gone ones count 0)."""
        total = 0
        for pid in self.tree():
            try:
                total += read(pid)
            except (OSError, ValueError, IndexError):
                pass
        return total

    def cpu_ticks(self) -> int:
        """User plus system CPU time (clock ticks) of the process tree so far."""
        def ticks(pid):
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
            fields = stat[stat.rindex(")") + 2:].split()
            return int(fields[11]) + int(fields[12])  # utime, stime
        return self._sum_over_tree(ticks)

    def peak_rss_kb(self) -> int:
        """Sum of VmHWM (peak resident set) over the process and its descendants."""
        def hwm(pid):
            with open(f"/proc/{pid}/status") as f:
                return next((int(line.split()[1]) for line in f if line.startswith("VmHWM:")), 0)
        return self._sum_over_tree(hwm)

    def stop(self) -> None:
        if self.alive():
            try:
                os.killpg(self.p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.p.pid, signal.SIGKILL)
                self.p.wait(timeout=5)
        self.out.close()
        if self in PROCS:
            PROCS.remove(self)

    def tail(self, n=30) -> str:
        try:
            with open(self.log, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""


def cpu_ticks_named(prefixes) -> dict:
    """User plus system CPU time (clock ticks) so far of every process whose name starts with
    one of `prefixes` (Redis and PostgreSQL, which bench/run does not start), per prefix."""
    out = {p: 0 for p in prefixes}
    for _, comm, fields in proc_stats():
        prefix = next((p for p in prefixes if comm.startswith(p)), None)
        if prefix:
            out[prefix] += int(fields[11]) + int(fields[12])  # utime, stime
    return out


def proc_stats():
    """(pid, name, the fields after the name) of every process /proc/PID/stat can be read of."""
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        yield int(d), stat[stat.index("(") + 1:stat.rindex(")")], stat[stat.rindex(")") + 2:].split()


def stop_all() -> None:
    for p in list(PROCS):
        try:
            p.stop()
        except Exception:  # noqa: BLE001 - best effort on the way out
            pass


def wait_port(port: int, proc: Proc, timeout: float) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if not proc.alive():
            die(f"{proc.name} exited at start:\n{proc.tail()}")
        if reachable(("127.0.0.1", port)):
            return
        time.sleep(0.1)
    die(f"{proc.name} did not listen on {port} within {timeout}s:\n{proc.tail()}")
