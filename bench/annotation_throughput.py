"""Annotation throughput: next task → submit over HTTP against the web server the README runs.

Starts the web process as the README does (`platform/web.py`: Granian, 2 processes × 1 thread) on SQLite in WAL mode
in a throwaway `LOUPE_DATA_DIR`, creates a project per size (10k, then 100k tasks, bulk-inserted through
the ORM), and drives K simulated annotators, each a thread with its own keep-alive connection and token,
doing next → submit for a fixed time, in each of two modes: `two-requests` (next, then submit) and
`submit-with-next` (`submit/?next=1` answers and hands the next task in one request, as the annotate pages
do). Prints one JSON line per (size, K, mode) with the median and p95 latency of next, of submit and of
the two together (in `submit-with-next`, the one request), annotations per second, and the server's memory (resident
set of the web server's processes), then a summary line. Loopback only; it is never a test.

    .venv/bin/python bench/annotation_throughput.py                      # 10k and 100k, K = 1 and 4
    .venv/bin/python bench/annotation_throughput.py --sizes 10000 --annotators 8 --seconds 10
    .venv/bin/python bench/annotation_throughput.py --kind rating --captions 1000,10000

`--captions` (rating only, issue 15) makes instead one caption contest per size: one cartoon (one item)
with that many captions, each carrying imported aggregate counts (`Response.meta["rating_counts"]`, about
`--votes` in all, spread like a contest's: most captions unfunny), so that a submit which re-derived the
cartoon's pairs would pay for every caption and vote. After the runs it times, per contest, what freezing a
snapshot now adds: re-deriving the pairs of the items the submits marked stale (`snapshot_refresh` lines;
`--no-snapshot-refresh` skips them). `--sampling adaptive` has the contests choose each next caption by the
top-k bandit (`rating_sampling = "adaptive"`) instead of least-rated first.

`--label-studio` then runs the same sizes and K on Label Studio 1.23 (Community, SQLite, `label-studio
start`; `bench/label_studio_peer.py`) after Loupe's server is stopped, and the summary sets the two side by
side (`label_studio`, `label_studio_cpu_over_loupe`).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

from measure import (  # bench/ is the script's folder on sys.path
    Timings,
    cpu_seconds,
    free_port,
    rss_mb,
    stop_process_group,
    summarize,
    wait_answering,
)

REPO = Path(__file__).resolve().parent.parent


def _setup_django(data_dir: Path) -> None:
    os.environ["LOUPE_DATA_DIR"] = str(data_dir)
    os.environ["DJANGO_SETTINGS_MODULE"] = "loupe.settings.base"
    os.environ.setdefault("LOUPE_DEMO", "1")  # a throwaway data folder: the demo's generated secret key
    os.environ.setdefault("LOUPE_LOG_LEVEL", "WARNING")
    sys.path.insert(0, str(REPO))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def _make_users(n: int) -> list[tuple[object, str]]:
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token

    users = []
    for i in range(n):
        user, created = get_user_model().objects.get_or_create(username=f"bench-annotator-{i}")
        if created:
            user.set_password(uuid.uuid4().hex)
            user.save()
        users.append((user, Token.objects.get_or_create(user=user)[0].key))
    return users


def _make_project(*, size: int, kind: str, overlap: int, users: list) -> str:
    """A project of `size` tasks (2 responses per item; one per item for correction and rating)."""
    from django.db import transaction

    from annotation import services
    from annotation.models import Item, Project, Response

    slug = f"bench-{kind}-{size}-o{overlap}"
    if Project.objects.filter(slug=slug).exists():
        project = Project.objects.get(slug=slug)
        for user, _token in users:
            services.project_member_add(project=project, user=user)
        return slug
    project = services.project_create(slug=slug, kind=kind, created_by=None, overlap=overlap)
    for user, _token in users:
        services.project_member_add(project=project, user=user)
    per_item = 1 if kind in ("correction", "rating") else (3 if kind == "ranking" else 2)
    batch = 10_000
    with transaction.atomic():
        for start in range(0, size, batch):
            items = Item.objects.bulk_create(
                [
                    Item(project=project, external_id=f"t{i}", prompt=f"What is in picture {i}?")
                    for i in range(start, min(size, start + batch))
                ]
            )
            Response.objects.bulk_create(
                [
                    Response(
                        item=item, project=project, position=k, text=f"Answer {k} to {item.external_id}: a red cube."
                    )
                    for item in items
                    for k in range(per_item)
                ],
                batch_size=batch,
            )
    return slug


def _make_contest(*, captions: int, votes: int, users: list, sampling: str = "uniform") -> str:
    """A rating project of one cartoon with `captions` captions and about `votes` imported votes in all, whose
    next caption is chosen by `sampling` (the project's `rating_sampling`: uniform or adaptive)."""
    from django.db import transaction

    from annotation import services
    from annotation.models import DEFAULT_RATING_LEVELS, Item, Project, Response

    slug = f"bench-contest-{captions}-{sampling}"
    if not Project.objects.filter(slug=slug).exists():
        # Every rater may rate every caption (once): the contest never runs out of tasks for fresh raters.
        project = services.project_create(
            slug=slug, kind="rating", created_by=None, overlap=len(users), rating_sampling=sampling
        )
        rng = random.Random(captions)
        per_caption = max(1, votes // captions)
        with transaction.atomic():
            item = Item.objects.create(project=project, external_id="cartoon", prompt="Caption this cartoon.")
            rows = []
            for k in range(captions):
                funny = rng.betavariate(1.2, 6)  # a contest's captions: most unfunny, a few funny
                n = max(1, int(rng.gauss(per_caption, per_caption / 5)))
                counts = Counter(rng.choices(range(3), weights=(1 - funny, funny * 0.7, funny * 0.3), k=min(n, 200)))
                scale = n / max(1, sum(counts.values()))
                rows.append(
                    Response(
                        item=item,
                        project=project,
                        position=k,
                        text=f"Caption {k}: the cube was red before it met the circle.",
                        meta={
                            "rating_counts": {DEFAULT_RATING_LEVELS[lvl]: round(c * scale) for lvl, c in counts.items()}
                        },
                    )
                )
            Response.objects.bulk_create(rows, batch_size=5000)
    project = Project.objects.get(slug=slug)
    for user, _token in users:
        services.project_member_add(project=project, user=user)
    return slug


def _time_snapshot_refresh(slug: str) -> dict:
    """Seconds to re-derive the pairs of the contest's stale items: the part of freezing a snapshot that
    submits used to pay, once per rating."""
    from annotation import services
    from annotation.models import Item, PreferencePair, Project

    project = Project.objects.get(slug=slug)
    stale = Item.objects.filter(project=project, pairs_stale=True).count()
    t = time.perf_counter()
    services.preference_pairs_refresh_stale(project=project)
    seconds = time.perf_counter() - t
    return {
        "event": "snapshot_refresh",
        "project": slug,
        "stale_items": stale,
        "pairs": PreferencePair.objects.filter(project=project).count(),
        "seconds": round(seconds, 3),
    }


def _answer(kind: str, task: dict, rng: random.Random) -> dict:
    if kind == "pairwise":
        return {"choice": rng.choice("ab"), "strength": rng.choice((1, 2))}
    if kind == "rating":
        return {"level": rng.randrange(3)}
    if kind == "ranking":
        order = [r["id"] for r in task["responses"]]
        rng.shuffle(order)
        return {"order": order}
    text = task["responses"][0]["text"]
    start = text.index("red")
    return {
        "segments": [{"start": start, "end": start + 3, "type": "attribute", "replacement": "blue", "original": "red"}]
    }


def _annotator(
    port: int,
    token: str,
    slug: str,
    kind: str,
    deadline: float,
    timings: Timings,
    lock: threading.Lock,
    mode: str = "two-requests",
):
    """One annotator's loop. `two-requests`: next, then submit. `submit-with-next`: submit/?next=1 answers
    and hands the next task in one request (a first next starts the loop); its latency counts as a whole
    next + submit cycle, and `next_ms` stays empty."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Authorization": f"Token {token}", "Content-Type": "application/json"}
    rng = random.Random(token)
    mine = Timings()
    task = None
    try:
        while time.monotonic() < deadline:
            t0 = time.perf_counter()
            if task is None:
                connection.request("POST", f"/api/v1/projects/{slug}/tasks/next/", body=b"", headers=headers)
                reply = connection.getresponse()
                body = reply.read()
                if reply.status == 204:
                    mine.empty += 1
                    break
                if reply.status != 200:
                    mine.errors.append(f"next {reply.status} {body[:200]!r}")
                    break
                task = json.loads(body)
            t1 = time.perf_counter()
            payload = {"client_request_id": uuid.uuid4().hex, "time_spent_ms": 1000, **_answer(kind, task, rng)}
            query = "?next=1" if mode == "submit-with-next" else ""
            connection.request(
                "POST",
                f"/api/v1/projects/{slug}/tasks/{task['assignment_id']}/submit/{query}",
                body=json.dumps(payload).encode(),
                headers=headers,
            )
            reply = connection.getresponse()
            body = reply.read()
            t2 = time.perf_counter()
            if reply.status != 201:
                mine.errors.append(f"submit {reply.status} {body[:200]!r}")
                break
            if mode == "submit-with-next":
                task = json.loads(body)["next_task"]
                if task is None:
                    mine.empty += 1
                    break
                mine.cycle_ms.append((t2 - t1) * 1000)
            else:
                task = None
                mine.next_ms.append((t1 - t0) * 1000)
                mine.cycle_ms.append((t2 - t0) * 1000)
            mine.submit_ms.append((t2 - t1) * 1000)
    except OSError as error:
        mine.errors.append(f"connection: {error}")
    finally:
        connection.close()
    mine.merge_into(timings, lock)


def _drive(
    *, port: int, users: list, slug: str, kind: str, seconds: float, mode: str = "two-requests"
) -> tuple[Timings, float]:
    timings, lock = Timings(), threading.Lock()
    deadline = time.monotonic() + seconds
    threads = [
        threading.Thread(target=_annotator, args=(port, token, slug, kind, deadline, timings, lock, mode), daemon=True)
        for _user, token in users
    ]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 60)
    return timings, time.monotonic() - started


def _label_studio_runs(*, sizes: list[int], ks: list[int], seconds: float, warmup: float) -> list[dict]:
    """The same sizes and K on Label Studio (one server, a project per size, one user per annotator): its
    `"event": "run"` lines, printed as they come."""
    import label_studio_peer as peer  # beside this file: bench/ is the script's folder on sys.path

    system = f"label-studio {peer.label_studio_version()}"
    rows = []
    with peer.LabelStudioServer() as server:
        tokens = peer.annotator_tokens(server, max(ks))
        projects = {size: peer.pairwise_project(server, tasks=size) for size in sizes}
        for size in sizes:
            project_id, import_s = projects[size]
            print(json.dumps({"event": "project", "system": system, "tasks": size, "seconds": round(import_s, 1)}))
            for k in ks:
                measured = peer.drive(server, project_id=project_id, tokens=tokens[:k], seconds=seconds, warmup=warmup)
                row = peer.run_row(server, measured, system=system, tasks=size, annotators=k, import_s=import_s)
                rows.append(row)
                print(json.dumps(row), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000", help="tasks per project, comma-separated")
    parser.add_argument("--annotators", default="1,4", help="simulated annotators K, comma-separated")
    parser.add_argument("--seconds", type=float, default=15.0, help="how long each (size, K) run lasts")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds before each run")
    parser.add_argument("--kind", default="pairwise", choices=("pairwise", "correction", "rating", "ranking"))
    parser.add_argument("--overlap", type=int, default=1)
    parser.add_argument(
        "--modes",
        default="two-requests,submit-with-next",
        help="comma-separated: two-requests (next, then submit) and/or submit-with-next (submit/?next=1, one "
        "request per annotation, as the annotate pages do)",
    )
    parser.add_argument(
        "--captions", help="rating only: captions per contest (one cartoon each), comma-separated; replaces --sizes"
    )
    parser.add_argument("--votes", type=int, default=1_000_000, help="imported votes per contest (with --captions)")
    parser.add_argument(
        "--sampling",
        default="uniform",
        choices=("uniform", "adaptive"),
        help="with --captions: the contest's rating_sampling (least-rated first, or the top-k bandit)",
    )
    parser.add_argument(
        "--web-threads",
        type=int,
        help="Python threads per web process (LOUPE_WEB_THREADS; default: platform/web.py's, 1)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the data directory")
    parser.add_argument(
        "--label-studio",
        action="store_true",
        help="after Loupe's runs (its server stopped), the same sizes and K on Label Studio 1.23 "
        "(`bench/label_studio_peer.py`, `.venv-labelstudio`): `system` tells the lines apart",
    )
    parser.add_argument(
        "--no-snapshot-refresh",
        action="store_true",
        help="with --captions: skip timing the snapshot refresh after the runs (minutes at 100,000 captions)",
    )
    parser.add_argument(
        "--conn-max-age",
        type=int,
        default=None,
        help="run the server with DATABASES CONN_MAX_AGE set to this (the README's settings close the SQLite "
        "connection after every request); the output says which settings ran",
    )
    parser.add_argument(
        "--data-dir", help="use (and keep) this data directory; projects already in it are reused, not re-created"
    )
    args = parser.parse_args()
    if args.captions and args.kind != "rating":
        parser.error("--captions needs --kind rating")
    if args.label_studio and (args.kind != "pairwise" or args.captions):
        parser.error("--label-studio compares pairwise projects only")
    sizes = [int(s) for s in (args.captions or args.sizes).split(",")]
    ks = [int(k) for k in args.annotators.split(",")]
    modes = args.modes.split(",")
    if set(modes) - {"two-requests", "submit-with-next"}:
        parser.error("--modes: two-requests and/or submit-with-next")

    data_dir = Path(args.data_dir) if args.data_dir else Path(tempfile.mkdtemp(prefix="loupe-bench-"))
    data_dir.mkdir(parents=True, exist_ok=True)
    keep = args.keep or bool(args.data_dir)
    process = None
    try:
        t0 = time.monotonic()
        _setup_django(data_dir)
        # A contest gives each rater every caption once; fresh raters per run keep its queue from running out.
        users = _make_users(2 * sum(ks) * len(sizes) * len(modes) if args.captions else max(ks))
        taken = 0
        slugs = {}
        for size in sizes:
            t = time.monotonic()
            if args.captions:
                slugs[size] = _make_contest(captions=size, votes=args.votes, users=users, sampling=args.sampling)
            else:
                slugs[size] = _make_project(size=size, kind=args.kind, overlap=args.overlap, users=users)
            print(
                json.dumps(
                    {
                        "event": "project",
                        ("captions" if args.captions else "tasks"): size,
                        "kind": args.kind,
                        "seconds": round(time.monotonic() - t, 1),
                    }
                ),
                flush=True,
            )
        from django.db import connections

        connections.close_all()

        port = free_port()
        settings_module = "loupe.settings.base"
        if args.conn_max_age is not None:
            (data_dir / "bench_settings.py").write_text(
                "from loupe.settings.base import *  # noqa: F403\n"
                f"DATABASES['default']['CONN_MAX_AGE'] = {args.conn_max_age}  # noqa: F405\n"
            )
            settings_module = "bench_settings"
        env = {
            **os.environ,
            "PYTHONPATH": f"{REPO}{os.pathsep}{data_dir}",
            "LOUPE_DATA_DIR": str(data_dir),
            "DJANGO_SETTINGS_MODULE": settings_module,
        }
        if args.web_threads:
            env["LOUPE_WEB_THREADS"] = str(args.web_threads)
        command = [sys.executable, "platform/web.py", "--bind", f"127.0.0.1:{port}"]
        log = (data_dir / "web.log").open("w")
        process = subprocess.Popen(
            command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        wait_answering(port, process)
        settings_label = (
            settings_module if args.conn_max_age is None else f"loupe.settings.base + CONN_MAX_AGE={args.conn_max_age}"
        )
        print(
            json.dumps(
                {
                    "event": "server",
                    "command": " ".join(command[1:]),
                    "web_threads": args.web_threads or "platform/web.py default",
                    "settings": settings_label,
                    "rss_mb": rss_mb(process.pid),
                    "setup_s": round(time.monotonic() - t0, 1),
                }
            ),
            flush=True,
        )

        results = []
        for size in sizes:
            for k in ks:
                for mode in modes:
                    warm_users, run_users = users[:k], users[:k]
                    if args.captions:
                        warm_users, run_users = users[taken : taken + k], users[taken + k : taken + 2 * k]
                        taken += 2 * k
                    _drive(
                        port=port, users=warm_users, slug=slugs[size], kind=args.kind, seconds=args.warmup, mode=mode
                    )
                    cpu_before = cpu_seconds(process.pid)
                    timings, elapsed = _drive(
                        port=port, users=run_users, slug=slugs[size], kind=args.kind, seconds=args.seconds, mode=mode
                    )
                    row = {
                        "event": "run",
                        "system": "loupe",
                        "settings": settings_label,
                        "kind": args.kind,
                        "mode": mode,
                        ("captions" if args.captions else "tasks"): size,
                        **({"sampling": args.sampling} if args.captions else {}),
                        "annotators": k,
                        "annotations": len(timings.submit_ms),
                        "next_ms": summarize(timings.next_ms),
                        "submit_ms": summarize(timings.submit_ms),
                        "next_plus_submit_ms": summarize(timings.cycle_ms),
                        "annotations_per_s": round(len(timings.submit_ms) / elapsed, 1),
                        "server_cpu_ms_per_annotation": round(
                            (cpu_seconds(process.pid) - cpu_before) * 1000 / max(1, len(timings.submit_ms)), 1
                        ),
                        "load_average": round(os.getloadavg()[0], 2),
                        "server_rss_mb": rss_mb(process.pid),
                        "errors": timings.errors[:3],
                        "queue_empty": timings.empty,
                    }
                    results.append(row)
                    print(json.dumps(row), flush=True)
        size_key = "captions" if args.captions else "tasks"

        def label(r: dict) -> str:
            return f"{r[size_key]}/K={r['annotators']}/{r['mode']}"

        peer_rows = []
        if args.label_studio:
            stop_process_group(process)  # the peer gets the machine to itself, as Loupe did
            peer_rows = _label_studio_runs(sizes=sizes, ks=ks, seconds=args.seconds, warmup=args.warmup)

        refreshes = []
        if args.captions and not args.no_snapshot_refresh:
            connections.close_all()
            for size in sizes:
                refreshes.append(_time_snapshot_refresh(slugs[size]))
                print(json.dumps(refreshes[-1]), flush=True)
        summary = {
            "event": "summary",
            "settings": settings_label,
            "goal": (
                "p95 of next + submit < 20 ms at 10,000 captions; no growth from 1,000 captions up"
                if args.captions
                else "p95 of next + submit < 30 ms at 100k tasks; no growth from 10k to 100k"
            ),
            "median_next_ms": {label(r): r["next_ms"]["median"] for r in results},
            "median_submit_ms": {label(r): r["submit_ms"]["median"] for r in results},
            "p95_next_plus_submit_ms": {label(r): r["next_plus_submit_ms"]["p95"] for r in results},
            "annotations_per_s": {label(r): r["annotations_per_s"] for r in results},
            "server_cpu_ms_per_annotation": {label(r): r["server_cpu_ms_per_annotation"] for r in results},
            "errors": sum(len(r["errors"]) for r in results),
        }
        if refreshes:
            summary["snapshot_refresh_s"] = {r["project"]: r["seconds"] for r in refreshes}
        if peer_rows:
            peer = {f"{r['tasks']}/K={r['annotators']}": r for r in peer_rows}
            summary["label_studio"] = {
                "system": peer_rows[0]["system"],
                "p95_next_plus_submit_ms": {key: r["next_plus_submit_ms"]["p95"] for key, r in peer.items()},
                "median_next_plus_submit_ms": {key: r["next_plus_submit_ms"]["median"] for key, r in peer.items()},
                "server_cpu_ms_per_annotation": {key: r["server_cpu_ms_per_annotation"] for key, r in peer.items()},
                "annotations_per_s": {key: r["annotations_per_s"] for key, r in peer.items()},
            }
            # Label Studio's CPU per annotation over Loupe's, per size and K and Loupe's mode.
            summary["label_studio_cpu_over_loupe"] = {
                label(r): round(
                    peer[f"{r['tasks']}/K={r['annotators']}"]["server_cpu_ms_per_annotation"]
                    / max(r["server_cpu_ms_per_annotation"], 0.1),
                    1,
                )
                for r in results
                if f"{r['tasks']}/K={r['annotators']}" in peer
            }
        print(json.dumps(summary), flush=True)
    finally:
        if process is not None:
            stop_process_group(process)
        if not keep:
            shutil.rmtree(data_dir, ignore_errors=True)
        else:
            print(json.dumps({"event": "kept", "data_dir": str(data_dir)}))


if __name__ == "__main__":
    main()
