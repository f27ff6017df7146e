"""Deriving stale preference pairs (issues 15 and 16): ms per stale item of `preference_pairs_refresh_stale`,
the work a snapshot does after submits, on the pairwise shape of `bench/scale.py` (2 responses per item,
5 judgments per item, every item stale).

Per size: a fresh project is imported and annotated with `bench/scale.py`'s own functions, then every
item's pairs are derived once from stale (timed), and, where the service exists, a second time by the
background refresh (`pair_refresh.preference_pairs_refresh_stale_batches`, a transaction per batch) after marking
every item stale again. One JSON line per measurement, a summary last.

    .venv/bin/python bench/pair_refresh.py --sizes 10000,100000            # SQLite in a temporary folder
    .venv/bin/python bench/pair_refresh.py --sizes 2000 --profile 40       # cProfile, top 40 by cumulative
    .venv/bin/python bench/pair_refresh.py --sizes 100000 --postgres       # starts its own PostgreSQL

Never a test.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.scale import _annotations_insert, _django, _emit, _import, _postgres, _write_items  # noqa: E402


def _refresh(project, n: int, *, profile: int) -> float:
    from annotation.services.preference_pairs import preference_pairs_refresh_stale

    profiler = cProfile.Profile() if profile else None
    started = time.perf_counter()
    if profiler:
        profiler.enable()
    result = preference_pairs_refresh_stale(project=project)
    if profiler:
        profiler.disable()
    seconds = time.perf_counter() - started
    _emit(
        {
            "size": n,
            "measure": "refresh_stale",
            "seconds": round(seconds, 3),
            "pairs_created": result.created,
            "ms_per_item": round(1000 * seconds / n, 4),
        }
    )
    if profiler:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(profile)
        print(out.getvalue(), file=sys.stderr)
    return 1000 * seconds / n


def _background(project, n: int) -> float | None:
    from annotation.models import Item

    try:
        from annotation.services.pair_refresh import preference_pairs_refresh_stale_batches as service
    except ImportError:  # measuring the code from before the background refresh
        return None
    Item.objects.filter(project=project).update(pairs_stale=True)
    started = time.perf_counter()
    result = service(project_id=project.pk)
    seconds = time.perf_counter() - started
    _emit(
        {
            "size": n,
            "measure": "refresh_background",
            "seconds": round(seconds, 3),
            "pairs_created": result.created,
            "ms_per_item": round(1000 * seconds / n, 4),
        }
    )
    return 1000 * seconds / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000", help="stale item counts, comma-separated")
    parser.add_argument("--profile", type=int, default=0, help="print cProfile's top N (cumulative) to stderr")
    parser.add_argument("--postgres", action="store_true", help="start a PostgreSQL server (platform/services.py)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="loupe-pair-refresh-"))
    work.chmod(0o755)  # the PostgreSQL server runs as its own user, under this folder
    os.environ.setdefault("LOUPE_LOG_LEVEL", "WARNING")
    services_root = work / "services"
    if args.postgres:
        os.environ["DATABASE_URL"] = _postgres(services_root)
    try:
        _run(work, args)
    finally:
        if services_root.exists():
            subprocess.run(
                [sys.executable, str(REPO / "platform" / "services.py"), "stop", str(services_root)], check=False
            )


def _run(work: Path, args: argparse.Namespace) -> None:
    _django(work / "data")
    from django.db import connection

    from annotation import services

    _emit({"measure": "setup", "database": connection.vendor})
    results = {}
    for n in [int(s) for s in args.sizes.split(",")]:
        project = services.project_create(slug=f"pairs-{n}", kind="pairwise", created_by=None, overlap=6)
        path = work / f"items-{n}.jsonl"
        _write_items(path, n)
        _import(project, path, n)
        path.unlink()
        _annotations_insert(project, n)
        results[n] = {"refresh_stale_ms_per_item": _refresh(project, n, profile=args.profile)}
        results[n]["refresh_background_ms_per_item"] = _background(project, n)
    _emit({"measure": "summary", "database": connection.vendor, "results": results})


if __name__ == "__main__":
    main()
