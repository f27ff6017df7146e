"""Benchmark of Loupe's dataset edges: export rows/s per format and import items/s, with peak memory.

    .venv/bin/python bench/export.py                      # 1M pairs, 100k import items (the issue's sizes)
    .venv/bin/python bench/export.py --pairs 100000 --pairs 1000000 --items 10000 --items 100000

Everything runs in a throwaway LOUPE_DATA_DIR (SQLite, embedded defaults). For each size it bulk-inserts
preference pairs straight into the database (raw SQL: the point is the exports, not the inserts), freezes
a snapshot, and exports it in every pair format, each in a fresh child process so that its peak RSS
(`ru_maxrss`) belongs to that export alone. Rating and SFT formats get a ratings/SFT snapshot of
`--captions` rated captions. Imports time `items_import` of Loupe JSONL items without images, then the
same rows stored with nothing but `rows_insert` (the "database floor": what storing alone costs). Running two
sizes shows whether peak memory grows with the number of rows. One JSON line per measurement, then a
summary line (with the machine's load average: on a shared machine the wall-clock rates fall with it, so
CPU seconds of the measured process are reported too). Not a test: nothing here asserts.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PAIR_FORMATS = [
    "trl-jsonl",
    "trl-parquet",
    "hf-dataset",
    "dense-jsonl",
    # rlaif-v and rlhf-v are left out: their releases hold an image in every row, and the benchmark's pairs are
    # text-only, which those writers refuse.
    "reward-jsonl",
    "sft-jsonl",
    "label-studio-json",
]
RATING_FORMATS = [("caption-contest-csv", "ratings"), ("label-studio-json", "ratings"), ("sft-jsonl", "sft")]
PAIRS_PER_ITEM = 10


def _django(data_dir: Path) -> None:
    os.environ["LOUPE_DATA_DIR"] = str(data_dir)
    os.environ["DJANGO_SETTINGS_MODULE"] = "loupe.settings.base"
    os.environ.setdefault("LOUPE_DEMO", "1")  # a throwaway data folder: the demo's generated secret key
    sys.path.insert(0, str(REPO))
    import django

    django.setup()


def _peak_mib() -> float:
    """This process's peak resident memory (VmHWM; ru_maxrss would include the parent's before exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _emit(record: dict) -> None:
    print(json.dumps(record), flush=True)


# ---------------------------------------------------------------------------------------------------
# Data


def _make_pairs(n_pairs: int, slug: str) -> int:
    """A project with n_pairs / PAIRS_PER_ITEM items and n_pairs pairs; returns the snapshot id."""
    from django.db import connection, transaction
    from django.utils import timezone

    from annotation import services
    from annotation.models import Item, PreferencePair, Project

    project = Project.objects.create(slug=slug, name=slug, kind="pairwise")
    n_items = max(1, n_pairs // PAIRS_PER_ITEM)
    started = time.perf_counter()
    with transaction.atomic():
        Item.objects.bulk_create(
            (
                Item(project=project, external_id=f"item-{i:08d}", prompt=f"Describe scene {i} in one sentence.")
                for i in range(n_items)
            ),
            batch_size=10_000,
        )
        first_id = Item.objects.filter(project=project).order_by("id").values_list("id", flat=True).first()
        table = PreferencePair._meta.db_table
        now = timezone.now().isoformat()
        columns = (
            "project_id, item_id, source, chosen_text, rejected_text, margin, agreement, n_votes, chosen_spans, "
            "rejected_spans, updated_at"
        )
        sql = f"INSERT INTO {table} ({columns}) VALUES ({', '.join(['%s'] * 11)})"  # noqa: S608 - Django's table name
        with connection.cursor() as cursor:
            batch = []
            for k in range(n_pairs):
                item = first_id + k % n_items
                chosen = f"A red circle above {k % 7} blue squares and a small green triangle on the left."
                rejected = f"A red circle above {k % 7 + 1} blue squares and a large green triangle on the left."
                spans = json.dumps([[19, 20], [48, 53]])
                batch.append(
                    (project.pk, item, "correction" if k % 3 == 0 else "pairwise", chosen, rejected, 1.0, 1.0, 1,
                     spans if k % 3 == 0 else "[]", "[]", now)
                )  # fmt: skip
                if len(batch) >= 50_000:
                    cursor.executemany(sql, batch)
                    batch = []
            if batch:
                cursor.executemany(sql, batch)
    _emit({"step": "insert pairs", "rows": n_pairs, "seconds": round(time.perf_counter() - started, 2)})
    started = time.perf_counter()
    snapshot = services.snapshot_create(project=project, created_by=None)
    seconds = time.perf_counter() - started
    _emit({"step": "snapshot", "kind": "pairs", "rows": snapshot.n_rows, "seconds": round(seconds, 2),
           "rows_per_s": round(snapshot.n_rows / seconds)})  # fmt: skip
    return snapshot.pk


def _make_ratings(n_captions: int, slug: str) -> dict[str, int]:
    """A rating project of cartoons with 100 captions each carrying imported counts; ratings and SFT snapshots."""
    from django.db import transaction

    from annotation import services
    from annotation.models import Item, Response

    project = services.project_create(slug=slug, kind="rating", created_by=None)
    per_item = 100
    with transaction.atomic():
        items = Item.objects.bulk_create(
            (Item(project=project, external_id=f"contest-{i:05d}", prompt="Write a funny caption.")
             for i in range(max(1, n_captions // per_item))),
            batch_size=5000,
        )  # fmt: skip
        responses = (
            Response(
                item=item,
                project=project,
                position=j,
                text=f"Caption {j} for {item.external_id}",
                meta={"rating_counts": {"unfunny": 50 + j, "somewhat funny": 30, "funny": 120 - j}},
            )
            for item in items
            for j in range(per_item)
        )
        Response.objects.bulk_create(responses, batch_size=10_000)
    ids = {}
    for kind in ("ratings", "sft"):
        started = time.perf_counter()
        snapshot = services.snapshot_create(
            project=project, created_by=None, snapshot_filter=services.SnapshotFilter(kind=kind)
        )
        seconds = time.perf_counter() - started
        _emit({"step": "snapshot", "kind": kind, "rows": snapshot.n_rows, "seconds": round(seconds, 2),
               "rows_per_s": round(snapshot.n_rows / seconds)})  # fmt: skip
        ids[kind] = snapshot.pk
    return ids


def _import_file(path: Path, n_items: int) -> Path:
    with open(path, "w", encoding="utf-8") as handle:
        for i in range(n_items):
            record = {
                "external_id": f"import-{i:08d}",
                "prompt": f"What is in picture {i}?",
                "responses": [
                    {"text": f"Two cats on a sofa, picture {i}.", "model": "model-a"},
                    {"text": f"Three cats on a sofa, picture {i}.", "model": "model-b"},
                ],
                "meta": {"batch": i // 1000},
            }
            handle.write(json.dumps(record) + "\n")
    return path


# ---------------------------------------------------------------------------------------------------
# Children: one measurement each, in a fresh process


def child_export(snapshot_id: int, export_format: str, out: Path) -> None:
    from annotation import services
    from annotation.models import DatasetSnapshot

    snapshot = DatasetSnapshot.objects.get(pk=snapshot_id)
    baseline = _rss_mib()
    started, cpu = time.perf_counter(), time.process_time()
    services.snapshot_export(snapshot=snapshot, export_format=export_format, out=out)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    _emit({
        "step": "export", "format": export_format, "kind": services.snapshot_kind(snapshot), "rows": snapshot.n_rows,
        "seconds": round(seconds, 2), "rows_per_s": round(snapshot.n_rows / seconds),
        "cpu_seconds": round(cpu, 2), "rows_per_cpu_s": round(snapshot.n_rows / cpu),
        "rss_before_mib": round(baseline, 1), "peak_rss_mib": round(_peak_mib(), 1), "bytes": size,
    })  # fmt: skip


def child_import(path: Path, n_items: int, slug: str) -> None:
    from annotation import services

    project = services.project_create(slug=slug, kind="pairwise", created_by=None)
    baseline = _rss_mib()
    started, cpu = time.perf_counter(), time.process_time()
    report = services.items_import(project=project, path=path)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    _emit({
        "step": "import", "format": "loupe-jsonl", "items": report.created, "responses": 2 * report.created,
        "seconds": round(seconds, 2), "items_per_s": round(n_items / seconds),
        "cpu_seconds": round(cpu, 2), "items_per_cpu_s": round(n_items / cpu),
        "rss_before_mib": round(baseline, 1), "peak_rss_mib": round(_peak_mib(), 1),
    })  # fmt: skip
    _emit(_database_floor(n_items, slug=f"{slug}-floor"))


def _database_floor(n_items: int, *, slug: str) -> dict:
    """The same rows stored with nothing but `rows_insert` (tuples built beforehand): what storing alone
    costs on this machine at this moment, to set the import's rate against."""
    from django.db import transaction

    from annotation import services
    from annotation.models import Item, Response
    from annotation.services.imports import rows_insert

    project = services.project_create(slug=slug, kind="pairwise", created_by=None)
    items = [(project.pk, f"floor-{i:08d}", f"What is in picture {i}?", "{}", "") for i in range(n_items)]
    started, cpu = time.perf_counter(), time.process_time()
    with transaction.atomic():
        rows_insert(Item, ("project_id", "external_id", "prompt", "meta", "image"), items)
        first = Item.objects.filter(project=project).order_by("pk").values_list("pk", flat=True).first()
        responses = [
            (first + i // 2, project.pk, i % 2, f"Two cats on a sofa, picture {i}.", "model-a", "{}")
            for i in range(2 * n_items)
        ]
        rows_insert(Response, ("item_id", "project_id", "position", "text", "model_name", "meta"), responses)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    return {
        "step": "database floor", "items": n_items, "responses": 2 * n_items, "seconds": round(seconds, 2),
        "items_per_s": round(n_items / seconds), "cpu_seconds": round(cpu, 2),
    }  # fmt: skip


def _run_child(data_dir: Path, *args: str) -> dict:
    result = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--data-dir", str(data_dir), "child", *args],
        capture_output=True, text=True, check=False, cwd=REPO,
    )  # fmt: skip
    if result.returncode != 0:
        record = {"step": "error", "args": list(args), "stderr": result.stderr[-2000:]}
        _emit(record)
        return record
    lines = result.stdout.strip().splitlines()
    for line in lines:
        print(line, flush=True)
    return json.loads(lines[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--pairs", type=int, action="append", help="pairs to export (repeatable; 0: none); default 1000000"
    )
    parser.add_argument("--items", type=int, action="append", help="items to import (repeatable); default 100000")
    parser.add_argument("--captions", type=int, default=100_000, help="rated captions for the rating formats")
    parser.add_argument("--formats", nargs="*", default=PAIR_FORMATS, help="pair formats to export")
    parser.add_argument("--data-dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("child", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        _django(args.data_dir)
        if args.child[1] == "export":
            child_export(int(args.child[2]), args.child[3], Path(args.child[4]))
        else:
            child_import(Path(args.child[2]), int(args.child[3]), args.child[4])
        return

    with tempfile.TemporaryDirectory(prefix="loupe-bench-") as tmp:
        data_dir = Path(tmp)
        _django(data_dir)
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        summary: dict = {"exports": {}, "imports": {}, "snapshots": {}}
        for n_pairs in args.pairs or [1_000_000]:
            if n_pairs <= 0:
                continue
            snapshot_id = _make_pairs(n_pairs, slug=f"bench-{n_pairs}")
            for export_format in args.formats:
                out = data_dir / f"out-{n_pairs}-{export_format}"
                record = _run_child(data_dir, "export", str(snapshot_id), export_format, str(out))
                if "rows_per_s" in record:
                    summary["exports"][f"{export_format}@{n_pairs}"] = {
                        "rows_per_s": record["rows_per_s"], "rows_per_cpu_s": record["rows_per_cpu_s"],
                        "peak_rss_mib": record["peak_rss_mib"],
                    }  # fmt: skip
                subprocess.run(["rm", "-rf", str(out)], check=False)
        if args.captions:
            ids = _make_ratings(args.captions, slug="bench-ratings")
            for export_format, kind in RATING_FORMATS:
                out = data_dir / f"out-{kind}-{export_format}"
                record = _run_child(data_dir, "export", str(ids[kind]), export_format, str(out))
                if "rows_per_s" in record:
                    summary["exports"][f"{export_format}({kind})@{args.captions}"] = {
                        "rows_per_s": record["rows_per_s"], "rows_per_cpu_s": record["rows_per_cpu_s"],
                        "peak_rss_mib": record["peak_rss_mib"],
                    }  # fmt: skip
        for n_items in args.items or [100_000]:
            if n_items <= 0:
                continue
            path = _import_file(data_dir / f"import-{n_items}.jsonl", n_items)
            record = _run_child(data_dir, "import", str(path), str(n_items), f"import-{n_items}")
            if "items_per_s" in record:
                summary["imports"][f"loupe-jsonl@{n_items}"] = {
                    "items_per_s": record["items_per_s"], "items_per_cpu_s": record["items_per_cpu_s"],
                    "peak_rss_mib": record["peak_rss_mib"],
                }  # fmt: skip
        summary["load_average"] = os.getloadavg()
        _emit({"step": "summary", **summary})


if __name__ == "__main__":
    main()
