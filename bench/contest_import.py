"""Benchmark of one real caption-contest import: time and peak memory, through the import service.

    .venv/bin/python bench/contest_import.py PATH/652_summary_KLUCB.csv [--image CARTOON.png]

PATH is a table of the public archive (nextml/caption-contest-data, `contests/summaries/`; the largest,
contest 652, has 10,246 captions). Everything runs in a throwaway LOUPE_DATA_DIR (SQLite, embedded
defaults): a rating project is made, then the table is read once by the reader alone (parse and checks),
then imported with `items_import` (read, check, store the item, its captions and the cartoon, derive the
preference pairs) in one transaction. Without `--image` a small generated PNG stands in for the cartoon.
One JSON line per step, then a summary line: seconds, captions/s, CPU seconds, peak RSS of this process
(VmHWM, Django and the migrated database included; `rss_before_import_mib` says how much of it was there
before the import) and the machine's load average (on a shared machine wall-clock rates fall with it).
Not a test: nothing here asserts.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _memory_mib(key: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _emit(record: dict) -> None:
    print(json.dumps(record), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("path", type=Path, help="a caption-contest table (CSV) of the public archive")
    parser.add_argument("--image", type=Path, help="the cartoon (default: a generated 600×400 PNG)")
    args = parser.parse_args()
    path = args.path.resolve()

    with tempfile.TemporaryDirectory(prefix="loupe-bench-contest-") as tmp:
        data_dir = Path(tmp)
        os.environ["LOUPE_DATA_DIR"] = str(data_dir)
        os.environ["DJANGO_SETTINGS_MODULE"] = "loupe.settings.base"
        os.environ.setdefault("LOUPE_DEMO", "1")  # a throwaway data folder: the demo's generated secret key
        sys.path.insert(0, str(REPO))
        import django

        django.setup()
        from django.core.management import call_command
        from PIL import Image

        from annotation import services
        from annotation.formats.caption_contest import ContestReadNotes, read_caption_contest_csv
        from annotation.models import PreferencePair, Response

        call_command("migrate", verbosity=0)
        image = args.image
        if image is None:
            image = data_dir / "cartoon.png"
            Image.new("RGB", (600, 400), "white").save(image)

        started, cpu = time.perf_counter(), time.process_time()
        notes = ContestReadNotes()
        (record,) = read_caption_contest_csv(path, notes=notes)
        _emit(
            {
                "step": "read",
                "file": path.name,
                "bytes": path.stat().st_size,
                "captions": len(record.responses),
                "skipped_rows": len(notes.skipped),
                "disagreeing_rows": len(notes.disagreeing),
                "seconds": round(time.perf_counter() - started, 3),
                "cpu_seconds": round(time.process_time() - cpu, 3),
            }
        )
        captions = len(record.responses)
        del record

        project = services.project_create(slug="bench-contest", kind="rating", created_by=None)
        rss_before = _memory_mib("VmRSS")
        started, cpu = time.perf_counter(), time.process_time()
        report = services.items_import(project=project, path=path, import_format="caption-contest", image=image)
        seconds = time.perf_counter() - started
        cpu_seconds = time.process_time() - cpu
        stored = Response.objects.filter(item__project=project).count()
        pairs = PreferencePair.objects.filter(project=project).count()
        _emit({"step": "import", **report.as_dict(), "responses_stored": stored, "pairs_stored": pairs})
        _emit(
            {
                "summary": True,
                "file": path.name,
                "captions": captions,
                "seconds": round(seconds, 2),
                "captions_per_s": round(captions / seconds, 1),
                "cpu_seconds": round(cpu_seconds, 2),
                "pairs": report.pairs,
                "skipped_rows": len(report.skipped_rows),
                "disagreeing_rows": report.disagreeing_rows,
                "rss_before_import_mib": round(rss_before, 1),
                "peak_rss_mib": round(_memory_mib("VmHWM"), 1),
                "load_average": [round(x, 2) for x in os.getloadavg()],
            }
        )


if __name__ == "__main__":
    main()
