"""Fixtures for the training platform tests: judged snapshots built straight in the database, and a real
Celery worker process that a test may kill."""

import itertools
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, _database_url_of_test_db

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
    started: list[tuple[subprocess.Popen, object]] = []

    def start() -> subprocess.Popen:
        log_path = tmp_path / f"worker-{len(started)}.log"
        log = log_path.open("w")
        env = {
            **os.environ,
            "DATABASE_URL": _database_url_of_test_db(),
            "DJANGO_SETTINGS_MODULE": "loupe.settings.test",
            "LOUPE_HEARTBEAT_TIMEOUT_SECONDS": str(SHORT_HEARTBEAT_SECONDS),
        }
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "loupe", "worker", "--pool", "solo", "-Q", "training",
             "--without-heartbeat", "--without-gossip", "--without-mingle", "--loglevel", "INFO"],
            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        started.append((process, log))
        deadline = time.monotonic() + 60
        while "ready." not in log_path.read_text() and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.2)
        if "ready." not in log_path.read_text():
            os.killpg(process.pid, signal.SIGKILL)
            pytest.fail("Celery worker did not start:\n" + log_path.read_text()[-4000:])
        process.log_path = log_path
        return process

    yield start
    for process, log in started:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        log.close()
