"""Load (issue 16, "Prove it"): 200 simulated annotators over HTTP against the web process and PostgreSQL.

Starts PostgreSQL (platform/services.py) unless DATABASE_URL names one, makes a pairwise project of
`--items` items with `--overlap`, and a user with a token per annotator; starts the web
process (`platform/web.py`); then each annotator (a thread with its own keep-alive connection) does
next → submit for `--seconds`. Some submits are sent twice with the same client request id (a retry after
a lost answer), which must store nothing new. Faults, on request:
- `--restart-postgres-at S`: PostgreSQL is restarted (fast shutdown, start) S seconds in;
- `--kill-web-at S`: a web worker process is killed (SIGKILL) S seconds in (Granian starts another).
Requests that fail during a fault are errors the client sees (and retries with the same request id); what
the check below needs is that nothing acknowledged is lost or doubled.

Afterwards, from the database: every acknowledged (2xx) submit is stored exactly once (one row with its
annotator and client request id), no item holds more annotations than the overlap, and no stored
annotation is one the clients never sent. Prints JSON lines (the run, the check) and a summary with p50/p95
latency of next and submit, throughput and errors by kind. Exit status 1 when the check fails. Never a test.

    .venv/bin/python bench/load.py                                # 200 annotators, 30 s
    .venv/bin/python bench/load.py --annotators 50 --seconds 20 --restart-postgres-at 8 --kill-web-at 12
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from measure import free_port, stop_process_group, wait_answering  # bench/ is the script's folder on sys.path

REPO = Path(__file__).resolve().parent.parent


@dataclass
class Record:
    next_ms: list[float] = field(default_factory=list)
    submit_ms: list[float] = field(default_factory=list)
    acknowledged: list[tuple[str, str]] = field(default_factory=list)  # (username, client request id)
    sent: set[tuple[str, str]] = field(default_factory=set)
    errors: Counter = field(default_factory=Counter)
    retries: int = 0
    empty: int = 0


def _emit(record: dict) -> None:
    print(json.dumps(record), flush=True)


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)


def _services(command: str, root: Path) -> str:
    return subprocess.run(
        [sys.executable, str(REPO / "platform" / "services.py"), command, str(root)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def _pg_ctl(root: Path, *args: str) -> None:
    import glob

    pg_ctl = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))[-1]
    command = [pg_ctl, "-D", str(root / "postgres" / "data"), *args]
    if os.geteuid() == 0:
        command = ["runuser", "-u", "postgres", "--", *command]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _setup(data_dir: Path, *, annotators: int, items: int, overlap: int) -> tuple[str, list[tuple[str, str]]]:
    os.environ["LOUPE_DATA_DIR"] = str(data_dir)
    os.environ["DJANGO_SETTINGS_MODULE"] = "loupe.settings.base"
    sys.path.insert(0, str(REPO))
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import transaction
    from rest_framework.authtoken.models import Token

    from annotation import services
    from annotation.models import Item, Response

    call_command("migrate", verbosity=0)
    project = services.project_create(slug="load", kind="pairwise", created_by=None, overlap=overlap)
    users = []
    for k in range(annotators):
        user = get_user_model().objects.create_user(username=f"load-{k}", password=uuid.uuid4().hex)
        services.project_member_add(project=project, user=user)
        users.append((user.username, Token.objects.create(user=user).key))
    with transaction.atomic():
        made = Item.objects.bulk_create(
            [Item(project=project, external_id=f"l{i}", prompt=f"Picture {i}?") for i in range(items)]
        )
        Response.objects.bulk_create(
            [
                Response(item=item, project=project, position=k, text=f"Answer {k} to {item.external_id}.")
                for item in made
                for k in range(2)
            ]
        )
    from django.db import connections

    connections.close_all()
    return project.slug, users


def _annotator(port: int, username: str, token: str, slug: str, deadline: float, out: Record, lock: threading.Lock):
    headers = {"Authorization": f"Token {token}", "Content-Type": "application/json"}
    rng = random.Random(username)
    mine = Record()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def call(path: str, body: bytes) -> tuple[int, bytes, float]:
        nonlocal connection
        started = time.perf_counter()
        try:
            connection.request("POST", path, body=body, headers=headers)
            reply = connection.getresponse()
            data = reply.read()
            return reply.status, data, (time.perf_counter() - started) * 1000
        except (OSError, http.client.HTTPException) as error:
            connection.close()
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            return 0, type(error).__name__.encode(), (time.perf_counter() - started) * 1000

    while time.monotonic() < deadline:
        status, data, took = call(f"/api/v1/projects/{slug}/tasks/next/", b"")
        if status == 204:
            mine.empty += 1
            break
        if status != 200:
            mine.errors[f"next {status} {data[:60]!r}"] += 1
            time.sleep(0.2)
            continue
        mine.next_ms.append(took)
        task = json.loads(data)
        request_id = uuid.uuid4().hex
        body = json.dumps(
            {"client_request_id": request_id, "choice": rng.choice("ab"), "strength": rng.choice((1, 2))}
        ).encode()
        path = f"/api/v1/projects/{slug}/tasks/{task['assignment_id']}/submit/"
        mine.sent.add((username, request_id))
        # A client whose answer was lost sends the same request again; one in 20 does so even after a 201.
        for attempt in range(5):
            status, data, took = call(path, body)
            if status in (200, 201):
                mine.submit_ms.append(took)
                if (username, request_id) not in mine.acknowledged:
                    mine.acknowledged.append((username, request_id))
                if attempt == 0 and rng.random() < 0.05:
                    mine.retries += 1
                    continue
                break
            mine.errors[f"submit {status} {data[:60]!r}"] += 1
            if 400 <= status < 500 and status != 429:
                break
            time.sleep(0.2 * (attempt + 1))
    connection.close()
    with lock:
        out.next_ms += mine.next_ms
        out.submit_ms += mine.submit_ms
        out.acknowledged += mine.acknowledged
        out.sent |= mine.sent
        out.errors.update(mine.errors)
        out.retries += mine.retries
        out.empty += mine.empty


def _check(record: Record, *, slug: str, overlap: int) -> dict:
    from django.db.models import Count

    from annotation.models import PairwiseJudgment

    stored = Counter(
        PairwiseJudgment.objects.filter(item__project__slug=slug).values_list(
            "annotator__username", "client_request_id"
        )
    )
    acknowledged = set(record.acknowledged)
    lost = [key for key in acknowledged if stored[key] == 0]
    doubled = [key for key, n in stored.items() if n > 1]
    unknown = [key for key in stored if key not in record.sent]
    stored_unacknowledged = [key for key in stored if key in record.sent and key not in acknowledged]
    over = (
        PairwiseJudgment.objects.filter(item__project__slug=slug)
        .values("item_id")
        .annotate(n=Count("id"))
        .filter(n__gt=overlap)
        .count()
    )
    return {
        "measure": "check",
        "acknowledged": len(acknowledged),
        "stored": sum(stored.values()),
        "lost": len(lost),
        "stored_twice": len(doubled),
        "stored_never_sent": len(unknown),
        # Committed, but the answer never reached the client (a fault between commit and reply): stored once,
        # and a retry with the same request id would be told so.
        "stored_without_acknowledgement": len(stored_unacknowledged),
        "items_over_overlap": over,
        "ok": not lost and not doubled and not unknown and over == 0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--annotators", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--overlap", type=int, default=3)
    parser.add_argument("--web-processes", type=int, default=4)
    parser.add_argument("--web-threads", type=int, default=8)
    parser.add_argument("--restart-postgres-at", type=float, help="seconds into the run")
    parser.add_argument("--kill-web-at", type=float, help="seconds into the run: SIGKILL one web worker process")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="loupe-load-"))
    work.chmod(0o755)  # the PostgreSQL server runs as its own user, under this folder
    services_root = work / "services"
    own_postgres = not os.environ.get("DATABASE_URL", "").startswith("postgres")
    web = None
    try:
        if own_postgres:
            out = _services("start", services_root)
            url = next(line.split("=", 1)[1] for line in out.splitlines() if "DATABASE_URL=" in line)
            import psycopg

            with psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as server:
                server.execute("CREATE DATABASE loupe")
            os.environ["DATABASE_URL"] = url
        elif args.restart_postgres_at is not None:
            parser.error("--restart-postgres-at needs the PostgreSQL this script starts (no DATABASE_URL)")
        os.environ.update(
            LOUPE_DEMO="1", LOUPE_HTTPS="0", DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost", LOUPE_LOG_LEVEL="WARNING"
        )
        slug, users = _setup(work / "data", annotators=args.annotators, items=args.items, overlap=args.overlap)
        port = free_port()
        env = {
            **os.environ,
            "WEB_CONCURRENCY": str(args.web_processes),
            "LOUPE_WEB_THREADS": str(args.web_threads),
            "PYTHONPATH": str(REPO),
        }
        web = subprocess.Popen(
            [sys.executable, "platform/web.py", "--bind", f"127.0.0.1:{port}"],
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=(work / "web.log").open("w"),
            start_new_session=True,
        )
        wait_answering(port, web)
        record, lock = Record(), threading.Lock()
        started = time.monotonic()
        run_deadline = started + args.seconds
        threads = [
            threading.Thread(target=_annotator, args=(port, name, token, slug, run_deadline, record, lock), daemon=True)
            for name, token in users
        ]
        for thread in threads:
            thread.start()
        faults = []
        for at, kind in sorted(
            (at, kind)
            for at, kind in ((args.restart_postgres_at, "postgres"), (args.kill_web_at, "web"))
            if at is not None
        ):
            time.sleep(max(0.0, started + at - time.monotonic()))
            if kind == "postgres":
                t = time.monotonic()
                _pg_ctl(services_root, "-m", "fast", "-w", "stop")
                _pg_ctl(
                    services_root,
                    "-w",
                    "-l",
                    str(services_root / "postgres" / "server.log"),
                    "-o",
                    f"-p {os.environ['DATABASE_URL'].rsplit(':', 1)[1].split('/')[0]} -k {services_root / 'postgres'} "
                    "-c listen_addresses=127.0.0.1 -c fsync=off",
                    "start",
                )
                faults.append({"fault": "postgres restarted", "at_s": at, "down_s": round(time.monotonic() - t, 2)})
            else:
                children = [
                    int(pid)
                    for pid in subprocess.run(
                        ["pgrep", "-P", str(web.pid)], capture_output=True, text=True
                    ).stdout.split()
                ]
                if children:
                    os.kill(children[0], signal.SIGKILL)
                faults.append({"fault": "web worker killed", "at_s": at, "pid": children[0] if children else None})
        for thread in threads:
            thread.join(args.seconds + 120)
        elapsed = time.monotonic() - started
        from django.db import connections

        connections.close_all()
        run = {
            "measure": "run",
            "annotators": args.annotators,
            "seconds": round(elapsed, 1),
            "web": f"{args.web_processes} processes x {args.web_threads} threads",
            "submits_acknowledged": len(record.acknowledged),
            "annotations_per_s": round(len(record.acknowledged) / elapsed, 1),
            "next_p50_ms": _percentile(record.next_ms, 0.5),
            "next_p95_ms": _percentile(record.next_ms, 0.95),
            "submit_p50_ms": _percentile(record.submit_ms, 0.5),
            "submit_p95_ms": _percentile(record.submit_ms, 0.95),
            "retries_of_acknowledged": record.retries,
            "errors": sum(record.errors.values()),
            "errors_by_kind": dict(record.errors.most_common(8)),
            "faults": faults,
        }
        _emit(run)
        check = _check(record, slug=slug, overlap=args.overlap)
        _emit(check)
        _emit(
            {
                "measure": "summary",
                **{k: run[k] for k in ("annotators", "annotations_per_s", "next_p95_ms", "submit_p95_ms", "errors")},
                "check_ok": check["ok"],
            }
        )
        if not check["ok"]:
            sys.exit(1)
    finally:
        if web is not None:
            stop_process_group(web)
        if own_postgres:
            _services("stop", services_root)


if __name__ == "__main__":
    main()
