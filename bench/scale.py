"""Scale on PostgreSQL (issue 16, "Prove it"): 100k then 1M items, 5 annotations per item (5M at 1M).

Per size, in a pairwise project (2 responses per item):
- import: a Loupe JSONL file of N items through `items_import` (the whole path: read, check, store), and
  the store alone (`rows_insert`, which on PostgreSQL is COPY): items/s of each;
- annotations: 5 per item bulk-inserted directly (the figure is about reads: the queue, snapshots and
  exports must hold with millions of rows beside them), unit counts set as the queue would have them;
- next task: `assignment_next` + `pairwise_judgment_submit` for `--next` tasks by a sixth annotator
  (overlap 6, so every item stays open): median and p95 of each;
- snapshot: the pairs of every item the annotations made stale derived as the background refresh does
  (`pair_refresh`, a transaction per batch of 2,000; `pairs_refresh_s`, ms per item), then `snapshot_create`
  freezes them (`snapshot_s`);
- export: `snapshot_export` to trl-jsonl, rows/s.
One JSON line per measurement, a summary last (with how each figure grows from the first size to the last).

    .venv/bin/python bench/scale.py                       # starts its own PostgreSQL (platform/services.py)
    .venv/bin/python bench/scale.py --sizes 100000 --next 300
    DATABASE_URL=postgres://… .venv/bin/python bench/scale.py   # an existing server (a database it may fill)

Never a test. Goals (issue 16): next-task p95 under 50 ms at 1M; COPY import at least 100k items/s;
snapshot and export growing linearly.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ANNOTATORS_PER_ITEM = 5


def _emit(record: dict) -> None:
    print(json.dumps(record), flush=True)


def _percentiles(values_ms: list[float]) -> dict:
    ordered = sorted(values_ms)
    return {
        "median_ms": round(statistics.median(ordered), 2),
        "p95_ms": round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], 2),
        "max_ms": round(ordered[-1], 2),
    }


def _postgres(root: Path) -> str:
    out = subprocess.run(
        [sys.executable, str(REPO / "platform" / "services.py"), "start", str(root)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    url = next(line.split("=", 1)[1] for line in out.splitlines() if "DATABASE_URL=" in line)
    import psycopg

    with psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as server:
        server.execute("CREATE DATABASE loupe")
    return url


def _django(data_dir: Path) -> None:
    os.environ["LOUPE_DATA_DIR"] = str(data_dir)
    os.environ["DJANGO_SETTINGS_MODULE"] = "loupe.settings.base"
    os.environ.setdefault("LOUPE_DEMO", "1")
    os.environ.setdefault("LOUPE_LOG_LEVEL", "WARNING")
    sys.path.insert(0, str(REPO))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def _write_items(path: Path, n: int) -> None:
    with path.open("w") as handle:
        for i in range(n):
            handle.write(
                json.dumps(
                    {
                        "external_id": f"s{i}",
                        "prompt": f"What is in picture {i}?",
                        "responses": [
                            {"text": f"A red cube and a blue sphere ({i}).", "model": "m-a"},
                            {"text": f"A red cube ({i}).", "model": "m-b"},
                        ],
                    }
                )
                + "\n"
            )


def _annotators(prefix: str, n: int) -> list:
    from django.contrib.auth import get_user_model

    model = get_user_model()
    return [model.objects.get_or_create(username=f"{prefix}-{k}")[0] for k in range(n)]


def _import(project, path: Path, n: int) -> None:
    from annotation import services
    from annotation.services import imports

    store_seconds = {"items": 0.0, "responses": 0.0}
    original = imports.rows_insert

    def timed(model, attnames, rows):
        rows = list(rows)  # built before the clock starts: the store alone is timed
        started = time.perf_counter()
        original(model, attnames, rows)
        store_seconds["items" if model.__name__ == "Item" else "responses"] += time.perf_counter() - started

    imports.rows_insert = timed
    try:
        started = time.perf_counter()
        report = services.items_import(project=project, path=path, import_format="loupe-jsonl", batch_size=20_000)
        seconds = time.perf_counter() - started
    finally:
        imports.rows_insert = original
    assert report.created == n, report
    store = store_seconds["items"] + store_seconds["responses"]
    _emit(
        {
            "size": n,
            "measure": "import",
            "seconds": round(seconds, 2),
            "items_per_s": round(n / seconds),
            "store_seconds": round(store, 2),
            "store_items_per_s": round(n / store),
            "store_rows_per_s": round(3 * n / store),
            "copy_items_per_s": round(n / store_seconds["items"]),
        }
    )


def _annotations_insert(project, n: int) -> list:
    """5 judgments per item, inserted directly by the server (INSERT … SELECT over the items and their
    responses: millions of rows through Python would time the bench, not the database), and the units'
    counts set as the queue would have them after those submits."""
    from django.db import connection, transaction
    from django.utils import timezone

    from annotation.models import Item, PairwiseJudgment, Response

    raters = _annotators(f"scale-rater-{n}", ANNOTATORS_PER_ITEM)
    given = {
        "item_id": "i.id",
        "annotator_id": "%(rater)s",
        "client_request_id": "'scale-' || i.id",
        "response_a_id": "r0.id",
        "response_b_id": "r1.id",
        "choice": "CASE WHEN (i.id + %(k)s) %% 3 = 0 THEN 'b' ELSE 'a' END",
        "strength": "1 + (i.id + %(k)s) %% 2",
    }
    now = timezone.now()
    defaults = {}
    for field in PairwiseJudgment._meta.concrete_fields:
        if field.primary_key or field.attname in given:
            continue
        value = (
            now if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False) else field.get_default()
        )
        defaults[field.column] = field.get_db_prep_save(value, connection)
    by_attname = {field.attname: field.column for field in PairwiseJudgment._meta.concrete_fields}
    columns = [by_attname[name] for name in given] + list(defaults)
    values = list(given.values()) + [f"%(d{i})s" for i in range(len(defaults))]
    statement = (
        f"INSERT INTO {PairwiseJudgment._meta.db_table} ({', '.join(columns)}) "  # noqa: S608 - names from the models
        f"SELECT {', '.join(values)} FROM {Item._meta.db_table} i "
        f"JOIN {Response._meta.db_table} r0 ON r0.item_id = i.id AND r0.position = 0 "
        f"JOIN {Response._meta.db_table} r1 ON r1.item_id = i.id AND r1.position = 1 "
        "WHERE i.project_id = %(project)s"
    )
    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        for k, rater in enumerate(raters):
            params = {"rater": rater.pk, "k": k, "project": project.pk}
            params.update({f"d{i}": value for i, value in enumerate(defaults.values())})
            cursor.execute(statement, params)
        # What the queue would hold after these submits (queue_units_sync, set-wise), and every item's pairs
        # stale, as submits leave them.
        cursor.execute(
            f"UPDATE {Item._meta.db_table} SET done_count = %s, taken_count = %s, pairs_stale = true "  # noqa: S608
            "WHERE project_id = %s",
            [ANNOTATORS_PER_ITEM, ANNOTATORS_PER_ITEM, project.pk],
        )
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {PairwiseJudgment._meta.db_table}")
        cursor.execute(f"ANALYZE {Item._meta.db_table}")
    seconds = time.perf_counter() - started
    total = n * ANNOTATORS_PER_ITEM
    _emit(
        {
            "size": n,
            "measure": "annotations_insert",
            "annotations": total,
            "annotations_in_database": PairwiseJudgment.objects.count(),
            "seconds": round(seconds, 2),
            "rows_per_s": round(total / seconds),
        }
    )
    return raters


def _next_tasks(project, n: int, tasks: int) -> dict:
    from annotation import services
    from annotation.services.queue import assignment_next

    annotator = _annotators(f"scale-queue-{n}", 1)[0]
    services.project_member_add(project=project, user=annotator)
    next_ms, submit_ms = [], []
    for k in range(tasks + 5):
        started = time.perf_counter()
        assignment = assignment_next(project=project, annotator=annotator)
        took = (time.perf_counter() - started) * 1000
        assert assignment is not None
        started = time.perf_counter()
        services.pairwise_judgment_submit(
            assignment_id=assignment.pk,
            annotator=annotator,
            choice="a" if k % 2 else "b",
            client_request_id=uuid.uuid4().hex,
            project=project,
        )
        if k >= 5:  # the first calls warm caches and connections
            next_ms.append(took)
            submit_ms.append((time.perf_counter() - started) * 1000)
    record = {
        "size": n,
        "measure": "next_task",
        "tasks": tasks,
        "next": _percentiles(next_ms),
        "submit": _percentiles(submit_ms),
    }
    _emit(record)
    return record


def _snapshot_and_export(project, n: int, out: Path, *, refresh_max: int) -> dict:
    from annotation import services
    from annotation.models import Item
    from annotation.services.pair_refresh import preference_pairs_refresh_stale_batches

    stale = Item.objects.filter(project=project, pairs_stale=True)
    left_stale = 0
    if refresh_max and stale.count() > refresh_max:
        # Past `refresh_max` items the bench derives the first ones only (timed: ms per item) and leaves the
        # rest without pairs (`--refresh-max 0`, the default, derives them all).
        cutoff = stale.order_by("id").values_list("id", flat=True)[refresh_max]
        left_stale = Item.objects.filter(project=project, pairs_stale=True, id__gte=cutoff).update(pairs_stale=False)
    # What the background refresh does while people annotate (`pair_refresh`, a transaction per batch):
    # every submit's item derived, so that the snapshot below finds nothing left to derive.
    started = time.perf_counter()
    refreshed = preference_pairs_refresh_stale_batches(project_id=project.pk, batch_size=2000)
    refresh_s = time.perf_counter() - started
    started = time.perf_counter()
    snapshot = services.snapshot_create(project=project, created_by=None)
    snapshot_s = time.perf_counter() - started
    record = {
        "size": n,
        "measure": "snapshot",
        "pairs_refresh_s": round(refresh_s, 2),
        "pairs_created": getattr(refreshed, "created", None),
        "items_refreshed": n - left_stale,
        "refresh_ms_per_item": round(1000 * refresh_s / max(1, n - left_stale), 3),
        "items_left_without_pairs": left_stale,
        "snapshot_s": round(snapshot_s, 2),
        "rows": snapshot.n_rows,
        "rows_per_s": round(snapshot.n_rows / snapshot_s) if snapshot_s else None,
    }
    _emit(record)
    started = time.perf_counter()
    services.snapshot_export(snapshot=snapshot, export_format="trl-jsonl", out=out / f"export-{n}")
    export_s = time.perf_counter() - started
    export = {
        "size": n,
        "measure": "export",
        "format": "trl-jsonl",
        "rows": snapshot.n_rows,
        "seconds": round(export_s, 2),
        "rows_per_s": round(snapshot.n_rows / export_s),
    }
    _emit(export)
    return {**record, "export_s": export["seconds"], "export_rows_per_s": export["rows_per_s"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100000,1000000", help="item counts, comma-separated")
    parser.add_argument("--next", type=int, default=300, help="tasks timed per size")
    parser.add_argument(
        "--refresh-max",
        type=int,
        default=0,
        help="derive the stale pairs of at most this many items per size (0: all); the rest get none",
    )
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    work = Path(tempfile.mkdtemp(prefix="loupe-scale-"))
    work.chmod(0o755)  # the PostgreSQL server runs as its own user, under this folder
    services_root = work / "services"
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        os.environ["DATABASE_URL"] = _postgres(services_root)
    try:
        _django(work / "data")
        from django.db import connection

        from annotation import services

        _emit({"measure": "setup", "database": connection.vendor, "server_version": connection.pg_version})
        results = {}
        for n in sizes:
            project = services.project_create(slug=f"scale-{n}", kind="pairwise", created_by=None, overlap=6)
            path = work / f"items-{n}.jsonl"
            _write_items(path, n)
            results[n] = {"import": None}
            _import(project, path, n)
            path.unlink()
            _annotations_insert(project, n)
            results[n]["next"] = _next_tasks(project, n, args.next)
            results[n]["snapshot"] = _snapshot_and_export(project, n, work, refresh_max=args.refresh_max)
        first, last = sizes[0], sizes[-1]
        summary = {
            "measure": "summary",
            "sizes": sizes,
            "next_p95_ms": {n: results[n]["next"]["next"]["p95_ms"] for n in sizes},
            "submit_p95_ms": {n: results[n]["next"]["submit"]["p95_ms"] for n in sizes},
            "snapshot_s": {n: results[n]["snapshot"]["snapshot_s"] for n in sizes},
            "pairs_refresh_s": {n: results[n]["snapshot"]["pairs_refresh_s"] for n in sizes},
            "export_rows_per_s": {n: results[n]["snapshot"]["export_rows_per_s"] for n in sizes},
        }
        if last != first:
            scale = last / first
            summary["growth_per_size_factor"] = {
                "size_factor": scale,
                "snapshot": round(
                    results[last]["snapshot"]["snapshot_s"] / results[first]["snapshot"]["snapshot_s"], 2
                ),
                "pairs_refresh": round(
                    results[last]["snapshot"]["pairs_refresh_s"] / results[first]["snapshot"]["pairs_refresh_s"], 2
                ),
                "export": round(results[last]["snapshot"]["export_s"] / results[first]["snapshot"]["export_s"], 2),
                "next_p95": round(
                    results[last]["next"]["next"]["p95_ms"] / results[first]["next"]["next"]["p95_ms"], 2
                ),
            }
        _emit(summary)
    finally:
        if services_root.exists():
            subprocess.run(
                [sys.executable, str(REPO / "platform" / "services.py"), "stop", str(services_root)], check=False
            )


if __name__ == "__main__":
    main()
