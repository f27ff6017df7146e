"""Benchmark of the data browser: latency of its page and its API at 100k items (issue 17).

    .venv/bin/python bench/browse_pages.py                   # 100k pairwise items, 5 runs per case
    .venv/bin/python bench/browse_pages.py --items 1000000 --runs 3

Everything runs in a throwaway LOUPE_DATA_DIR (SQLite, embedded defaults). It bulk-inserts (`bulk_create`) a
pairwise project of `--items` items, two answers each, three annotators' judgments on two thirds of the items
(one in ten disagreeing), and AI labeler verdicts on one answer in ten; then asks for the browser's page
(`/projects/<slug>/data/`) and its API (`/api/v1/projects/<slug>/browse/`) through Django's test client as
the project's manager: the first page, a page deep in the listing (by cursor), each sort, each filter, a
search, and filters together. Each case runs `--runs` times after one warm-up. One JSON line per case
(p50/p95 in ms, queries per request, rows), then a summary line with p50/p95 over all page and all API
requests. Not a test: nothing here asserts.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BATCH = 5000


def _django(data_dir: Path) -> None:
    os.environ["LOUPE_DATA_DIR"] = str(data_dir)
    os.environ["DJANGO_SETTINGS_MODULE"] = "loupe.settings.base"
    os.environ.setdefault("LOUPE_DEMO", "1")  # a throwaway data folder: the demo's generated secret key
    sys.path.insert(0, str(REPO))
    import django

    django.setup()
    from django.conf import settings

    # Pages name static files unhashed (no collectstatic in a throwaway folder), as the tests do.
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


def _emit(record: dict) -> None:
    print(json.dumps(record), flush=True)


def _populate(n_items: int, seed: int) -> tuple[object, object, list[str]]:
    """The project, its manager and the annotators' usernames."""
    from django.contrib.auth import get_user_model
    from django.db import transaction

    from annotation import services
    from annotation.models import AIFeedback, Item, PairwiseJudgment, Response, Role

    rng = random.Random(seed)
    users = get_user_model()
    manager = users.objects.create_user(username="bench-manager")
    annotators = [users.objects.create_user(username=f"bench-ann{k}") for k in range(6)]
    project = services.project_create(slug="bench-browse", kind="pairwise", created_by=manager, overlap=3)
    for user in annotators:
        services.project_member_add(project=project, user=user, role=Role.ANNOTATOR)
    words = ["red", "blue", "green", "cat", "dog", "square", "circle", "left", "right", "above", "below"]
    started = time.perf_counter()
    for first in range(0, n_items, BATCH):
        with transaction.atomic():
            count = min(BATCH, n_items - first)
            judged = [(first + k) % 3 != 0 for k in range(count)]
            items = Item.objects.bulk_create(
                Item(
                    project=project,
                    external_id=f"item-{first + k:07d}",
                    prompt=f"Describe the image {first + k}: what is {' '.join(rng.sample(words, 3))}?",
                    done_count=3 if judged[k] else 0,
                    taken_count=3 if judged[k] else 0,
                    is_open=not judged[k],
                )
                for k in range(count)
            )
            responses = Response.objects.bulk_create(
                Response(item=item, project=project, position=position, text=" ".join(rng.choices(words, k=12)))
                for item in items
                for position in range(2)
            )
            judgments, verdicts = [], []
            for k, item in enumerate(items):
                a, b = responses[2 * k], responses[2 * k + 1]
                if judged[k]:
                    disagree = rng.random() < 0.1
                    for j, user in enumerate(rng.sample(annotators, 3)):
                        choice = "b" if disagree and j == 2 else "a"
                        judgments.append(
                            PairwiseJudgment(
                                item=item, annotator=user, client_request_id=f"{item.pk}-{j}", response_a=a,
                                response_b=b, choice=choice, time_spent_ms=rng.randint(2000, 20000),
                            )
                        )  # fmt: skip
                if k % 10 == 0:
                    verdicts.append(
                        AIFeedback(
                            response=a, labeler_model="bench-labeler", claims=["a claim"], p_yes=[0.3], score=-1.0
                        )
                    )
            PairwiseJudgment.objects.bulk_create(judgments)
            AIFeedback.objects.bulk_create(verdicts)
    _emit({"setup": "populate", "items": n_items, "seconds": round(time.perf_counter() - started, 1)})
    return project, manager, [user.username for user in annotators]


def _cases(slug: str, annotator: str, deep_cursor: str) -> list[tuple[str, dict]]:
    return [
        ("first page", {}),
        ("deep page (cursor)", {"after": deep_cursor}),
        ("sort newest first", {"sort": "-id"}),
        ("sort external id desc", {"sort": "-external_id"}),
        ("sort most annotations", {"sort": "-annotations"}),
        ("annotator", {"annotator": annotator}),
        ("status open", {"status": "open"}),
        ("has AI feedback", {"feedback": "ai"}),
        ("no human annotation", {"feedback": "no_human"}),
        ("disagree", {"agreement": "disagree"}),
        ("annotated today", {"date_from": time.strftime("%Y-%m-%d")}),
        ("search common word", {"q": "circle"}),
        ("search rare id", {"q": "item-0099999"}),
        ("annotator + disagree + AI", {"annotator": annotator, "agreement": "disagree", "feedback": "ai"}),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--limit", type=int, default=25, help="Rows per page.")
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument(
        "--data-dir", type=Path, help="Keep the database here and reuse it when run again (default: a throwaway one)."
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="loupe-bench-browse-") as tmp:
        data_dir = args.data_dir or Path(tmp)
        data_dir.mkdir(parents=True, exist_ok=True)
        _django(data_dir)
        from django.contrib.auth import get_user_model
        from django.core.management import call_command
        from django.db import connection, reset_queries
        from django.test import Client
        from django.test.utils import CaptureQueriesContext

        from annotation.models import Project

        call_command("migrate", verbosity=0)
        project = Project.objects.filter(slug="bench-browse").first()
        if project is None:
            project, manager, annotators = _populate(args.items, args.seed)
        else:
            manager = get_user_model().objects.get(username="bench-manager")
            annotators = [f"bench-ann{k}" for k in range(6)]
            _emit({"setup": "reused", "data_dir": str(data_dir), "items": project.items.count()})
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")  # what a long-lived database has: statistics for the planner
        client = Client()
        client.force_login(manager)
        api = f"/api/v1/projects/{project.slug}/browse/"
        page_url = f"/projects/{project.slug}/data/"
        # A cursor half-way through: follow `next` from a page that starts there.
        from annotation.models import Item
        from annotation.selectors_browse import cursor_encode

        middle = Item.objects.filter(project=project).order_by("pk").values_list("pk", flat=True)[args.items // 2]
        all_times: dict[str, list[float]] = {"page": [], "api": []}
        for name, params in _cases(project.slug, annotators[0], cursor_encode([middle])):
            params = {**params, "limit": args.limit}
            for surface, url in (("page", page_url), ("api", api)):
                client.get(url, params)  # warm-up
                times, queries, rows = [], 0, None
                for _ in range(args.runs):
                    reset_queries()
                    with CaptureQueriesContext(connection) as captured:
                        started = time.perf_counter()
                        answer = client.get(url, params)
                        times.append((time.perf_counter() - started) * 1000)
                    queries = len(captured)
                    if answer.status_code != 200:
                        raise SystemExit(f"{surface} {name}: HTTP {answer.status_code} {answer.content[:300]!r}")
                    if surface == "api":
                        rows = len(answer.json()["results"])
                all_times[surface] += times
                _emit(
                    {
                        "case": name,
                        "surface": surface,
                        "p50_ms": round(statistics.median(times), 1),
                        "p95_ms": round(_p95(times), 1),
                        "queries": queries,
                        **({"rows": rows} if rows is not None else {}),
                    }
                )
        _emit(
            {
                "summary": True,
                "items": args.items,
                "runs_per_case": args.runs,
                "page_p50_ms": round(statistics.median(all_times["page"]), 1),
                "page_p95_ms": round(_p95(all_times["page"]), 1),
                "api_p50_ms": round(statistics.median(all_times["api"]), 1),
                "api_p95_ms": round(_p95(all_times["api"]), 1),
                "load_average": os.getloadavg(),
            }
        )


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


if __name__ == "__main__":
    main()
