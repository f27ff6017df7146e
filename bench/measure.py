"""What the HTTP benches measure the same way (`annotation_throughput.py` and its Label Studio peer,
`label_studio_peer.py`): a free loopback port, a server's process tree, its CPU time and memory from /proc,
and latencies as median / p95 / max."""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import statistics
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def process_tree(root_pid: int) -> list[int]:
    """The process and its descendants (a server's master and workers), from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    tree, todo = [], [root_pid]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def wait_answering(
    port: int, process: subprocess.Popen, *, path: str = "/api/v1/projects/", timeout: float = 60
) -> None:
    """Wait until the server `process` started answers `path` on `port` (an API route by default: pages need
    `collectstatic`'s manifest, which a throwaway data folder lacks)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{process.args[1:3]} exited with {process.returncode}")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", path)
            if connection.getresponse().status in (200, 401, 403):
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"{process.args[1:3]} did not answer in {timeout:.0f} s")


def stop_process_group(process: subprocess.Popen, *, timeout: float = 20) -> None:
    """SIGTERM a server started with `start_new_session=True` and its whole group, SIGKILL after `timeout`;
    then whatever of the group outlived its leader (a worker it forked)."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=timeout)
        except ProcessLookupError:
            pass
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


def cpu_seconds(root_pid: int) -> float:
    """CPU time (user + system) a process and its descendants have used so far: a cost that, unlike
    latency, does not depend much on what else the machine is running."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in process_tree(root_pid):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return total / ticks


def rss_mb(root_pid: int) -> float:
    """Resident memory of a process and its descendants, in MB."""
    total_kb = 0
    for pid in process_tree(root_pid):
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kb += int(line.split()[1])
        except OSError:
            pass
    return round(total_kb / 1024, 1)


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)


def summarize(values: list[float]) -> dict[str, float | None]:
    """Median, p95 and max, rounded to 0.01."""
    return {
        "median": round(statistics.median(values), 2) if values else None,
        "p95": percentile(values, 0.95),
        "max": round(max(values), 2) if values else None,
    }


@dataclass
class Timings:
    """One annotator's (or all annotators') latencies in ms, refusals and runs out of tasks."""

    next_ms: list[float] = field(default_factory=list)
    submit_ms: list[float] = field(default_factory=list)
    cycle_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    empty: int = 0

    def merge_into(self, total: Timings, lock: threading.Lock) -> None:
        """Add this annotator's figures to the run's, from its own thread."""
        with lock:
            total.next_ms += self.next_ms
            total.submit_ms += self.submit_ms
            total.cycle_ms += self.cycle_ms
            total.errors += self.errors
            total.empty += self.empty
