"""Issue 16, item 1: no public default SECRET_KEY, and crowd cookies nobody can forge, even with the key.

The attack was: with the built-in key, sign {"user": <id>} (participant ids are sequential) and change any
participant's stored ratings. Now the key is the deployment's own (or the demo's, random, in its data
folder) and the cookie carries a random token whose hash alone is stored.
"""

import os
import stat
import subprocess
import sys

import pytest

from tests.conftest import REPO

PRINT_KEY = (
    "import os, django\n"
    "os.environ['DJANGO_SETTINGS_MODULE'] = 'loupe.settings.base'\n"
    "django.setup()\n"
    "from django.conf import settings\n"
    "print(settings.SECRET_KEY)\n"
)


def _start(tmp_path, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in ("DJANGO_SECRET_KEY", "LOUPE_DEMO")}
    clean.update({"LOUPE_DATA_DIR": str(tmp_path), **env})
    return subprocess.run(
        [sys.executable, "-c", PRINT_KEY], cwd=REPO, env=clean, capture_output=True, text=True, timeout=120
    )


def test_outside_the_demo_loupe_refuses_to_start_without_a_secret_key(tmp_path):
    started = _start(tmp_path)
    assert started.returncode != 0
    assert "ImproperlyConfigured" in started.stderr and "DJANGO_SECRET_KEY is not set" in started.stderr
    assert not (tmp_path / "secret_key").exists(), "nothing generated outside the demo"
    given = _start(tmp_path, DJANGO_SECRET_KEY="a-key-the-admin-chose-0123456789")
    assert given.returncode == 0, given.stderr
    assert given.stdout.strip() == "a-key-the-admin-chose-0123456789"


def test_the_demo_generates_a_random_key_once_into_its_data_folder(tmp_path):
    first = _start(tmp_path / "one", LOUPE_DEMO="1")
    assert first.returncode == 0, first.stderr
    key = first.stdout.strip()
    assert len(key) >= 50 and "insecure" not in key
    key_file = tmp_path / "one" / "secret_key"
    assert key_file.read_text().strip() == key
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600, "only the owner reads the key"
    again = _start(tmp_path / "one", LOUPE_DEMO="1")
    assert again.stdout.strip() == key, "the key is kept: sessions survive a restart"
    # CLI commands after demo.sh (no LOUPE_DEMO in that shell) use the demo's key of that data folder.
    assert _start(tmp_path / "one").stdout.strip() == key
    other = _start(tmp_path / "two", LOUPE_DEMO="1")
    assert other.stdout.strip() not in ("", key), "every demo has its own key"


# ------------------------------------------------------------------------------------------ crowd cookies


@pytest.fixture
def public_rating(db, researcher):
    from tests.annotation.test_queue import make_project

    return make_project(
        researcher, [], kind="rating", items=1, responses=4, overlap=5, slug="crowd-secure", visibility="public"
    )


def _participant(client):
    token = client.get("/crowd/crowd-secure/").cookies["csrftoken"].value
    task = client.post("/api/v1/projects/crowd-secure/tasks/next/", HTTP_X_CSRFTOKEN=token)
    assert task.status_code == 200
    return token, task.json()["assignment_id"], client.cookies["loupe_participant"].value


def _client():
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.get("/")
    return client


@pytest.mark.production_path  # the token hash column comes with a migration
def test_a_participant_cookie_cannot_be_forged_even_with_the_secret_key(public_rating):
    """Victim rates; the attacker, knowing SECRET_KEY and the victim's id, tries the old signed form, the
    victim's id with the attacker's own token, and guessed tokens: none changes the victim's rating."""
    from django.core import signing

    from annotation.models import CrowdParticipant, Rating

    victim = _client()
    victim_csrf, victim_task, victim_cookie = _participant(victim)
    url = f"/api/v1/projects/crowd-secure/tasks/{victim_task}/submit/"
    stored = victim.post(
        url, {"level": 1, "client_request_id": "v1"}, content_type="application/json", HTTP_X_CSRFTOKEN=victim_csrf
    )
    assert stored.status_code == 201
    victim_id = CrowdParticipant.objects.get().user_id
    assert victim_cookie.startswith(f"{victim_id}.") and len(victim_cookie.split(".", 1)[1]) >= 40
    assert victim_cookie.split(".", 1)[1] not in str(CrowdParticipant.objects.values().get()), "only a hash stored"

    attacker = _client()
    attacker_csrf, _, attacker_cookie = _participant(attacker)
    forged_values = [
        signing.dumps({"user": victim_id}, salt="loupe.crowd-participant", compress=True),
        f"{victim_id}.{attacker_cookie.split('.', 1)[1]}",
        f"{victim_id}.",
        f"{victim_id}.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        str(victim_id),
        f"\u00b3.{attacker_cookie.split('.', 1)[1]}",  # '³': isdigit() but not int()
    ]
    for forged in forged_values:
        attacker.cookies["loupe_participant"] = forged
        answer = attacker.post(
            url,
            {"level": 5, "client_request_id": f"forged-{forged[:8]}"},
            content_type="application/json",
            HTTP_X_CSRFTOKEN=attacker_csrf,
        )
        assert answer.status_code in (401, 403, 404), (forged, answer.status_code)
    assert Rating.objects.get(assignment_id=victim_task).level == 1
    # The genuine cookie still works (and it is what the browser keeps).
    victim.cookies["loupe_participant"] = victim_cookie
    progress = victim.get("/api/v1/projects/crowd-secure/tasks/progress/")
    assert progress.status_code == 200
