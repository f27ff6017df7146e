"""Label Studio as the peer of the annotation throughput bench: next task → submit over HTTP, same shape.

Issue 15 asks that `bench/annotation_throughput.py` report Label Studio side by side with Loupe in the
same run, on the same machine. This module is what it imports, and it also runs alone. It starts Label
Studio (Community, the installation in `.venv-labelstudio`, SQLite, its own `label-studio start` server)
on a free loopback port with a throwaway data directory under /tmp, creates one pairwise project per size
with the labeling config Loupe exports for pairwise projects (`annotation/formats/label_studio.py`,
without the image) and tasks shaped like the Loupe bench's items (a prompt and two answers), and drives
K simulated annotators, each a thread with its own Label Studio user, token and keep-alive connection,
doing `GET /api/projects/{id}/next/` → `POST /api/tasks/{id}/annotations/` for a fixed time after an
unmeasured warm-up. Prints one JSON line per (size, K) in the shape of the Loupe bench's `"event": "run"`
lines (median, p95 and max of next, of submit and of the two together, annotations per second, the
server's CPU milliseconds per annotation), then a summary line. Loopback only; it is never a test.

    .venv/bin/python bench/label_studio_peer.py                          # 10k and 100k, K = 1 and 4
    .venv/bin/python bench/label_studio_peer.py --sizes 1000 --annotators 2 --seconds 5

Each annotator is its own Label Studio user because Label Studio locks the task it hands out to the user
who asked and, until it is annotated, hands that user the same locked task again: K threads sharing one
user would be handed the same task. Community edition has no API that
makes a user *with* a token (`POST /api/users/` makes one without password or token), so the annotators
sign up through the web form (`/user/signup/`, which puts them in the one organization) and read their
legacy token from `/api/current-user/token` with the session the signup opened.

Tasks go in through Label Studio's import API (`POST /api/projects/{id}/import`, synchronous in
Community), `--chunk` per request: on the 2-core dev machine 20,000 a request was the fastest of 2k, 5k,
10k and 20k (about 2,000 tasks/s, 100k in under a minute); the `project` lines say how long it took. A
fresh data directory first migrates, about a minute before the server answers (`server` line, `start_s`).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
from measure import (  # bench/ is the script's folder on sys.path
    Timings,
    cpu_seconds,
    free_port,
    rss_mb,
    stop_process_group,
    summarize,
)

REPO = Path(__file__).resolve().parent.parent
LABEL_STUDIO = REPO / ".venv-labelstudio" / "bin" / "label-studio"

sys.path.insert(0, str(REPO))
from annotation.formats.label_studio import label_config  # noqa: E402 - plain Python, no Django

PAIRWISE_CONFIG = label_config(kind="pairwise", with_image=False)  # what Loupe exports for pairwise projects


def label_studio_version(executable: Path = LABEL_STUDIO) -> str:
    """The installed Label Studio version, read from its package metadata (no process started)."""
    venv = executable.resolve().parent.parent
    for info in sorted(venv.glob("lib/python*/site-packages/label_studio-*.dist-info")):
        return info.name.removeprefix("label_studio-").removesuffix(".dist-info")
    return "unknown"


class LabelStudioServer:
    """A Label Studio server on a free loopback port with a throwaway data directory, for a `with` block.

    On entry it starts `label-studio start` in its own process group with an admin user whose legacy API
    token is `.token`, and waits until `GET /api/projects/` with that token answers 200 (a fresh data
    directory first migrates, about a minute). On exit it stops the whole group (SIGTERM, then SIGKILL)
    and removes the data directory unless `keep`.
    """

    def __init__(self, *, executable: Path = LABEL_STUDIO, timeout: float = 300, keep: bool = False) -> None:
        self.executable = executable
        self.timeout = timeout
        self.keep = keep
        self.token = secrets.token_hex(20)
        self.email = "bench-admin@loupe.test"
        self.password = secrets.token_urlsafe(16)
        self.port = 0
        self.url = ""
        self.pid = 0
        self.start_s = 0.0
        self.data_dir: Path | None = None
        self._process: subprocess.Popen | None = None
        self._log = None

    def __enter__(self) -> LabelStudioServer:
        if not self.executable.exists():
            raise SystemExit(f"Label Studio is not installed at {self.executable}: run platform/labelstudio.sh")
        started = time.monotonic()
        self.data_dir = Path(tempfile.mkdtemp(prefix="loupe-bench-ls-", dir="/tmp"))
        self.port = free_port()
        # Keep it off the network (version check, Sentry, analytics), and keep Loupe's own Django
        # settings from leaking into Label Studio's.
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_", "LOUPE_"))},
            "LATEST_VERSION_CHECK": "false",
            "SENTRY_DSN": "",
            "FRONTEND_SENTRY_DSN": "",
            "COLLECT_ANALYTICS": "false",
        }
        self._log = (self.data_dir / "server.log").open("w")
        try:
            self._process = subprocess.Popen(
                [
                    str(self.executable), "start", "--no-browser", "--internal-host", "127.0.0.1",
                    "-p", str(self.port), "--data-dir", str(self.data_dir / "data"),
                    "--username", self.email, "--password", self.password,
                    "--user-token", self.token, "--enable-legacy-api-token",
                ],
                env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
            self.pid = self._process.pid
            self._wait_ready()
        except BaseException:
            self._stop()
            raise
        self.start_s = time.monotonic() - started
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self._stop()

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return (self.data_dir / "server.log").read_text()[-chars:] if self.data_dir else ""
        except OSError:
            return ""

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.timeout
        while True:
            if self._process.poll() is not None:
                raise RuntimeError(f"Label Studio exited with {self._process.returncode}:\n{self.log_tail()}")
            # When its port is taken Label Studio silently starts on the next one; its log says which.
            for line in self.log_tail(20000).splitlines():
                if "Trying to start at" in line:
                    self.port = int(line.rsplit(" ", 1)[1])
            self.url = f"http://127.0.0.1:{self.port}"
            try:
                reply = httpx.get(
                    f"{self.url}/api/projects/", headers={"Authorization": f"Token {self.token}"}, timeout=5
                )
                if reply.status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"Label Studio did not answer in {self.timeout:.0f} s:\n{self.log_tail()}")
            time.sleep(1)

    def _stop(self) -> None:
        if self._process is not None:
            stop_process_group(self._process, timeout=30)
        if self._log is not None:
            self._log.close()
            self._log = None
        if self.data_dir is not None and not self.keep:
            shutil.rmtree(self.data_dir, ignore_errors=True)


def _client(server: LabelStudioServer, token: str | None = None, timeout: float = 60) -> httpx.Client:
    return httpx.Client(
        base_url=server.url, headers={"Authorization": f"Token {token or server.token}"}, timeout=timeout
    )


def pairwise_project(server: LabelStudioServer, *, tasks: int, chunk: int = 20_000) -> tuple[int, float]:
    """A project with Loupe's pairwise config and `tasks` tasks like the Loupe bench's items (a prompt, two
    answers), imported `chunk` tasks per request; returns its id and the seconds creating it took."""
    started = time.monotonic()
    with _client(server, timeout=1800) as client:
        made = client.post(
            "/api/projects/", json={"title": f"Loupe bench pairwise {tasks}", "label_config": PAIRWISE_CONFIG}
        )
        if made.status_code != 201:
            raise RuntimeError(f"create project: {made.status_code} {made.text[:500]}")
        project_id = made.json()["id"]
        for start in range(0, tasks, chunk):
            batch = [
                {
                    "external_id": f"t{i}",
                    "prompt": f"What is in picture {i}?",
                    "text1": f"Answer 0 to t{i}: a red cube.",
                    "text2": f"Answer 1 to t{i}: a red cube.",
                }
                for i in range(start, min(tasks, start + chunk))
            ]
            reply = client.post(f"/api/projects/{project_id}/import", json=batch)
            if reply.status_code != 201:
                raise RuntimeError(f"import tasks {start}..: {reply.status_code} {reply.text[:500]}")
    return project_id, time.monotonic() - started


def annotator_tokens(server: LabelStudioServer, count: int, *, prefix: str = "bench-annotator") -> list[str]:
    """API tokens of `count` new Label Studio users in the server's organization, one per annotator.

    Community edition's `POST /api/users/` makes a user without a password or token, so each signs up
    through the web form instead (which adds it to the one organization and logs it in) and reads its
    legacy token with that session."""
    tokens = []
    for i in range(count):
        with httpx.Client(base_url=server.url, timeout=60) as browser:
            browser.get("/user/signup/")
            # Django takes any 32 letters-and-digits as the CSRF secret when cookie and form field agree.
            csrf = browser.cookies.get("csrftoken") or secrets.token_hex(16)
            browser.cookies.set("csrftoken", csrf)
            signup = browser.post(
                "/user/signup/",
                data={
                    "csrfmiddlewaretoken": csrf,
                    "email": f"{prefix}-{i}-{secrets.token_hex(3)}@loupe.test",
                    "password": secrets.token_urlsafe(16),
                },
            )
            if signup.status_code != 302:
                raise RuntimeError(f"sign up annotator {i}: {signup.status_code} {signup.text[:500]}")
            reply = browser.get("/api/current-user/token")
            if reply.status_code != 200:
                raise RuntimeError(f"token of annotator {i}: {reply.status_code} {reply.text[:500]}")
            tokens.append(reply.json()["token"])
    return tokens


def _result(rng: random.Random) -> list[dict[str, Any]]:
    """A judgment the pairwise config accepts: which answer is better, and by how much (as Loupe's bench
    answers `choice` a/b with `strength` 1/2)."""
    return [
        {
            "from_name": "pw",
            "to_name": "text1,text2",
            "type": "pairwise",
            "value": {"selected": rng.choice(("left", "right"))},
        },
        {"from_name": "strength", "to_name": "text1", "type": "number", "value": {"number": rng.choice((1, 2))}},
    ]


def _annotator(port: int, token: str, project_id: int, deadline: float, timings: Timings, lock: threading.Lock) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    headers = {"Authorization": f"Token {token}", "Content-Type": "application/json"}
    rng = random.Random(token)
    mine = Timings()
    try:
        while time.monotonic() < deadline:
            t0 = time.perf_counter()
            connection.request("GET", f"/api/projects/{project_id}/next/", headers=headers)
            reply = connection.getresponse()
            body = reply.read()
            t1 = time.perf_counter()
            if reply.status == 404 and b"no tasks" in body:
                mine.empty += 1
                break
            if reply.status != 200:
                mine.errors.append(f"next {reply.status} {body[:200]!r}")
                break
            task = json.loads(body)
            payload = {"result": _result(rng), "lead_time": 1.0}
            connection.request(
                "POST", f"/api/tasks/{task['id']}/annotations/", body=json.dumps(payload).encode(), headers=headers
            )
            reply = connection.getresponse()
            body = reply.read()
            t2 = time.perf_counter()
            if reply.status != 201:
                mine.errors.append(f"submit {reply.status} {body[:200]!r}")
                break
            mine.next_ms.append((t1 - t0) * 1000)
            mine.submit_ms.append((t2 - t1) * 1000)
            mine.cycle_ms.append((t2 - t0) * 1000)
    except (OSError, http.client.HTTPException) as error:
        mine.errors.append(f"connection: {error!r}")
    finally:
        connection.close()
    mine.merge_into(timings, lock)


def _run(server: LabelStudioServer, project_id: int, tokens: list[str], seconds: float) -> tuple[Timings, float]:
    timings, lock = Timings(), threading.Lock()
    deadline = time.monotonic() + seconds
    threads = [
        threading.Thread(target=_annotator, args=(server.port, token, project_id, deadline, timings, lock), daemon=True)
        for token in tokens
    ]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 180)
    return timings, time.monotonic() - started


def drive(
    server: LabelStudioServer, *, project_id: int, tokens: list[str], seconds: float, warmup: float = 2.0
) -> dict[str, Any]:
    """One annotator thread per token doing next → submit on `project_id` for `seconds`, after `warmup`
    unmeasured seconds (as the Loupe bench does). Returns the latencies in ms (`next_ms`, `submit_ms`,
    `cycle_ms`), `errors`, `empty` (annotators who found no task left), `elapsed_s` and the server's CPU
    per annotation over the measured part."""
    if warmup > 0:
        _run(server, project_id, tokens, warmup)
    cpu_before = cpu_seconds(server.pid)
    timings, elapsed = _run(server, project_id, tokens, seconds)
    cpu_used = cpu_seconds(server.pid) - cpu_before
    return {
        "next_ms": timings.next_ms,
        "submit_ms": timings.submit_ms,
        "cycle_ms": timings.cycle_ms,
        "errors": timings.errors,
        "empty": timings.empty,
        "elapsed_s": elapsed,
        "server_cpu_s": cpu_used,
        "server_cpu_ms_per_annotation": round(cpu_used * 1000 / max(1, len(timings.submit_ms)), 1),
    }


def run_row(
    server: LabelStudioServer, measured: dict[str, Any], *, system: str, tasks: int, annotators: int, import_s: float
) -> dict[str, Any]:
    """A `drive` result as an `"event": "run"` line in the Loupe bench's shape."""
    return {
        "event": "run",
        "system": system,
        "kind": "pairwise",
        "tasks": tasks,
        "annotators": annotators,
        "annotations": len(measured["submit_ms"]),
        "next_ms": summarize(measured["next_ms"]),
        "submit_ms": summarize(measured["submit_ms"]),
        "next_plus_submit_ms": summarize(measured["cycle_ms"]),
        "annotations_per_s": round(len(measured["submit_ms"]) / measured["elapsed_s"], 1),
        "server_cpu_ms_per_annotation": measured["server_cpu_ms_per_annotation"],
        "load_average": round(os.getloadavg()[0], 2),
        "server_rss_mb": rss_mb(server.pid),
        "errors": measured["errors"][:3],
        "queue_empty": measured["empty"],
        "server_start_s": round(server.start_s, 1),
        "import_s": round(import_s, 1),
    }


def _exit_on_signal(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000", help="tasks per project, comma-separated")
    parser.add_argument("--annotators", default="1,4", help="simulated annotators K, comma-separated")
    parser.add_argument("--seconds", type=float, default=15.0, help="how long each (size, K) run lasts")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds before each run")
    parser.add_argument("--chunk", type=int, default=20_000, help="tasks per import request")
    parser.add_argument("--keep", action="store_true", help="keep the data directory (its path is printed)")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    ks = [int(k) for k in args.annotators.split(",")]
    system = f"label-studio {label_studio_version()}"
    # A SIGTERM (a timeout, a Ctrl-C from a supervisor) unwinds through the `with`, which stops the server.
    signal.signal(signal.SIGTERM, _exit_on_signal)

    with LabelStudioServer(keep=args.keep) as server:
        print(
            json.dumps(
                {
                    "event": "server",
                    "system": system,
                    "command": "label-studio start (Django runserver, SQLite)",
                    "rss_mb": rss_mb(server.pid),
                    "start_s": round(server.start_s, 1),
                }
            ),
            flush=True,
        )
        t = time.monotonic()
        tokens = annotator_tokens(server, max(ks))
        print(
            json.dumps(
                {
                    "event": "annotators",
                    "users": len(tokens),
                    "via": "/user/signup/",
                    "seconds": round(time.monotonic() - t, 1),
                }
            ),
            flush=True,
        )
        # All projects first, as the Loupe bench makes them: the smaller size's runs see the larger's tasks
        # in the same tables.
        projects: dict[int, tuple[int, float]] = {}
        for size in sizes:
            projects[size] = pairwise_project(server, tasks=size, chunk=args.chunk)
            print(
                json.dumps(
                    {
                        "event": "project",
                        "system": system,
                        "tasks": size,
                        "kind": "pairwise",
                        "chunk": args.chunk,
                        "seconds": round(projects[size][1], 1),
                    }
                ),
                flush=True,
            )
        results = []
        for size in sizes:
            project_id, import_s = projects[size]
            for k in ks:
                measured = drive(
                    server, project_id=project_id, tokens=tokens[:k], seconds=args.seconds, warmup=args.warmup
                )
                row = run_row(server, measured, system=system, tasks=size, annotators=k, import_s=import_s)
                results.append(row)
                print(json.dumps(row), flush=True)

        def label(r: dict) -> str:
            return f"{r['tasks']}/K={r['annotators']}"

        print(
            json.dumps(
                {
                    "event": "summary",
                    "system": system,
                    "median_next_ms": {label(r): r["next_ms"]["median"] for r in results},
                    "median_submit_ms": {label(r): r["submit_ms"]["median"] for r in results},
                    "p95_next_plus_submit_ms": {label(r): r["next_plus_submit_ms"]["p95"] for r in results},
                    "annotations_per_s": {label(r): r["annotations_per_s"] for r in results},
                    "server_cpu_ms_per_annotation": {label(r): r["server_cpu_ms_per_annotation"] for r in results},
                    "import_s": {str(size): round(projects[size][1], 1) for size in sizes},
                    "errors": sum(len(r["errors"]) for r in results),
                }
            ),
            flush=True,
        )
        if args.keep:
            print(json.dumps({"event": "kept", "data_dir": str(server.data_dir)}), flush=True)


if __name__ == "__main__":
    main()
