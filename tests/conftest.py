"""Fixtures shared by the whole suite: named users and API clients, projects, shapes-world import files,
tiny models (built once per session) and a real Celery worker process."""

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import write_shapes_import

# Nothing in the tests may reach a model hub: fail loudly instead of hanging on a download.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Playwright's sync API runs an event loop in the test thread; the ORM calls beside it are still synchronous.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
# Submits queue a background derivation of their project's stale pairs once they commit
# (annotation.services.pair_refresh). Off in the suite, for the worker and server processes the tests start
# (this variable) and for this one (`_pair_refresh_background_off`): no test's outcome may hang on a queued
# refresh arriving, and a refresh queued by one test must not run in the next one's worker. Tests of it turn
# it on with the `settings` fixture, or call the service or the task directly.
os.environ.setdefault("LOUPE_PAIR_REFRESH_BACKGROUND", "0")

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"
if not SHARED_DATA.is_dir():
    # The real public data (caption-contest tables, POPE questions) lies beside the checkout, as in CI.
    raise pytest.UsageError(f"{SHARED_DATA} is missing: the tests read real data from ../shared/data")
ARTIFACTS = REPO / "tests" / "artifacts"


@pytest.fixture(autouse=True, scope="session")
def _pair_refresh_background_off() -> Iterator[None]:
    # Django read its settings before this file set the variable above.
    from django.test import override_settings

    with override_settings(LOUPE_PAIR_REFRESH_BACKGROUND=False):
        yield


# ------------------------------------------------------------------------------------------------ users


@pytest.fixture
def make_user(db):
    from django.contrib.auth import get_user_model

    def make(username: str, *, staff: bool = False):
        return get_user_model().objects.create_user(
            username=username, password=f"{username}-password", is_staff=staff, is_superuser=staff
        )

    return make


@pytest.fixture
def admin_user(make_user):
    return make_user("ada-admin", staff=True)


@pytest.fixture
def researcher(make_user):
    return make_user("rhea-researcher")


@pytest.fixture
def annotator(make_user):
    return make_user("ann-annotator")


@pytest.fixture
def outsider(make_user):
    return make_user("otto-outsider")


@pytest.fixture
def api_client_for():
    from rest_framework.authtoken.models import Token
    from rest_framework.test import APIClient

    def client_for(user):
        client = APIClient()
        if user is not None:
            token, _ = Token.objects.get_or_create(user=user)
            client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
        return client

    return client_for


# ----------------------------------------------------------------------------------------- shapes world


@pytest.fixture
def shapes_import(tmp_path) -> Path:
    return write_shapes_import(tmp_path / "shapes", n=6, seed=11)


@pytest.fixture
def pairwise_project(db, researcher, annotator):
    from annotation import services

    project = services.project_create(slug="shapes-pairwise", kind="pairwise", created_by=researcher)
    services.project_member_add(project=project, user=annotator)
    return project


# ---------------------------------------------------------------------------------------- tiny models


@pytest.fixture(scope="session")
def tiny_models_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("tiny-models")


@pytest.fixture(scope="session")
def tiny_lm_dir(tiny_models_root) -> Path:
    from training.tiny_models import make_tiny_model

    return make_tiny_model(kind="lm", out_dir=tiny_models_root / "lm")


@pytest.fixture(scope="session")
def tiny_vlm_dir(tiny_models_root) -> Path:
    from training.tiny_models import make_tiny_model

    return make_tiny_model(kind="vlm", out_dir=tiny_models_root / "vlm")


@pytest.fixture(scope="session")
def tiny_reward_dir(tiny_models_root) -> Path:
    from training.tiny_models import make_tiny_model

    return make_tiny_model(kind="reward", out_dir=tiny_models_root / "reward")


# The realistic variant: saved in bf16, no pad token, dropout on, 576 image tokens (see training.tiny_models).


@pytest.fixture(scope="session")
def real_lm_dir(tiny_models_root) -> Path:
    from training.tiny_models import make_tiny_model

    return make_tiny_model(kind="lm", out_dir=tiny_models_root / "real-lm", variant="realistic")


@pytest.fixture(scope="session")
def real_vlm_dir(tiny_models_root) -> Path:
    from training.tiny_models import make_tiny_model

    return make_tiny_model(kind="vlm", out_dir=tiny_models_root / "real-vlm", variant="realistic")


@pytest.fixture(scope="session")
def real_reward_dir(tiny_models_root) -> Path:
    from training.tiny_models import make_tiny_model

    return make_tiny_model(kind="reward", out_dir=tiny_models_root / "real-reward", variant="realistic")


# ------------------------------------------------------------------------------------ a real worker


def _database_url_of_test_db() -> str:
    from django.db import connection

    settings_dict = connection.settings_dict
    if settings_dict["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{settings_dict['NAME']}"
    return (
        f"postgres://{settings_dict['USER']}:{settings_dict['PASSWORD']}@{settings_dict['HOST']}:"
        f"{settings_dict['PORT']}/{settings_dict['NAME']}"
    )


def celery_workers(
    tmp_path: Path, *, queues: str, env: dict[str, str] | None = None, log_name: str = "worker"
) -> Iterator[Callable[[], subprocess.Popen]]:
    """Start real `celery worker` processes on the test database and broker (no eager mode) for the fixtures
    below: each in its own process group, so a test can SIGKILL it with its children, its log at
    `process.log_path`; every one still alive at the end is stopped."""
    started: list[tuple[subprocess.Popen, Any]] = []

    def start() -> subprocess.Popen:
        log_path = tmp_path / f"{log_name}-{len(started)}.log"
        log = log_path.open("w")
        process_env = {
            **os.environ,
            "DATABASE_URL": _database_url_of_test_db(),
            "DJANGO_SETTINGS_MODULE": "loupe.settings.test",
            **(env or {}),
        }
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "loupe", "worker", "--pool", "solo", "-Q", queues,
             "--without-heartbeat", "--without-gossip", "--without-mingle", "--loglevel", "INFO"],
            cwd=REPO, env=process_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
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


@pytest.fixture
def celery_worker_process(transactional_db, tmp_path) -> Iterator[subprocess.Popen]:
    """A real `celery worker` process on the default, training and labeler queues."""
    workers = celery_workers(tmp_path, queues="default,training,labeler")
    yield next(workers)()
    next(workers, None)


# --------------------------------------------------------------------------------------------- browser
# One Chromium for the whole session (Playwright's sync API allows one running instance per thread), shared by
# every folder's browser tests.

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            # No lookups leave the machine: Chromium's update and autofill services are unreachable here.
            args=["--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE localhost , EXCLUDE 127.0.0.1"],
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser) -> Iterator[object]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(10_000)
    yield page
    context.close()


@pytest.fixture
def login(live_server):
    def log_in(page, user) -> None:
        page.goto(f"{live_server.url}/login/")
        page.fill("input[name=username]", user.username)
        page.fill("input[name=password]", f"{user.username}-password")
        page.click("button[type=submit]")
        page.wait_for_url(f"{live_server.url}/")

    return log_in


@pytest.fixture(scope="session")
def screenshot_dir():
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
