"""Fixtures for the training platform tests: judged snapshots built straight in the database, and a real
Celery worker process that a test may kill."""

import itertools
from pathlib import Path

import pytest

from tests.conftest import celery_workers

_ids = itertools.count(1)
# The heartbeat timeout the worker tests run with: short, so a killed worker's run is found dead quickly.
SHORT_HEARTBEAT_SECONDS = 3


def build_pairs_snapshot(*, slug: str, image_dir: Path, n_items: int = 12, test_fraction: float = 0.25):
    """A pairwise project of shapes-world items whose true caption was preferred every time, frozen as a
    pairs snapshot (text rows: the platform tests train text models)."""
    from django.contrib.auth import get_user_model

    from annotation import services
    from annotation.models import Item, PairwiseJudgment, Response
    from annotation.shapes_world import shapes_world_items

    project = services.project_create(slug=slug, kind="pairwise", created_by=None)
    judge = get_user_model().objects.create_user(username=f"{slug}-judge", password="x")
    for record in shapes_world_items(n=n_items, seed=3, image_dir=image_dir):
        item = Item.objects.create(project=project, external_id=record["external_id"], prompt=record["prompt"])
        truth, wrong = (
            Response.objects.create(item=item, position=position, text=response["text"])
            for position, response in enumerate(record["responses"])
        )
        PairwiseJudgment.objects.create(
            item=item,
            annotator=judge,
            client_request_id=f"judge-{next(_ids)}",
            response_a=truth,
            response_b=wrong,
            choice="a",
            strength=1,
        )
    services.preference_pairs_refresh_project(project=project)
    return services.snapshot_create(
        project=project, created_by=None, snapshot_filter=services.SnapshotFilter(test_fraction=test_fraction)
    )


@pytest.fixture
def model_folder(tmp_path) -> str:
    """A folder that passes the run checks' base-model test (it has a config.json), for runs that never train."""
    folder = tmp_path / "base-model"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "llama"}', encoding="utf-8")
    return str(folder)


@pytest.fixture
def pairs_snapshot(db, tmp_path):
    return build_pairs_snapshot(slug="shapes-train", image_dir=tmp_path / "images")


@pytest.fixture
def start_worker(transactional_db, tmp_path, settings):
    """Start real `celery worker` processes (training queue) on the test database; each can be SIGKILLed.

    The workers and this test both use a heartbeat timeout of SHORT_HEARTBEAT_SECONDS. Every worker still
    alive at the end is stopped.
    """
    settings.LOUPE_HEARTBEAT_TIMEOUT_SECONDS = SHORT_HEARTBEAT_SECONDS
    yield from celery_workers(
        tmp_path, queues="training", env={"LOUPE_HEARTBEAT_TIMEOUT_SECONDS": str(SHORT_HEARTBEAT_SECONDS)}
    )
