"""Label Studio interchange against a real Label Studio server (1.23, in its own virtual environment).

The server is installed by `platform/labelstudio.sh` (run by `platform/setup.sh --test`) and started once
for this module on a free loopback port with a fresh data directory; it is stopped by its process id
after. These tests are skipped only when LOUPE_SKIP_LABEL_STUDIO=1 is set; without the installation they
fail, saying how to install it.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from django.core.management import call_command

from annotation import services
from annotation.models import Correction, PairwiseJudgment, PreferencePair, Ranking, Rating, Response
from annotation.services.labelstudio import labelstudio_pull, labelstudio_push
from tests.annotation.feedback import project_with_items

REPO = Path(__file__).resolve().parents[2]
LABEL_STUDIO = REPO / ".venv-labelstudio" / "bin" / "label-studio"
TOKEN = "loupe0test0token0for0label0studio0000001"
EMAIL = "peer@loupe.test"

pytestmark = [
    pytest.mark.skipif(os.environ.get("LOUPE_SKIP_LABEL_STUDIO") == "1", reason="LOUPE_SKIP_LABEL_STUDIO=1"),
    pytest.mark.django_db,
]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def label_studio(tmp_path_factory):
    """A running Label Studio server: (url, token)."""
    if not LABEL_STUDIO.exists():
        pytest.fail("Label Studio is not installed: run platform/labelstudio.sh (or set LOUPE_SKIP_LABEL_STUDIO=1)")
    data_dir = tmp_path_factory.mktemp("label-studio")
    port = _free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_", "LOUPE_"))},
        "LATEST_VERSION_CHECK": "false",
        "SENTRY_DSN": "",
        "FRONTEND_SENTRY_DSN": "",
        "COLLECT_ANALYTICS": "false",
    }
    log = (data_dir / "server.log").open("w")
    process = subprocess.Popen(
        [
            str(LABEL_STUDIO), "start", "--no-browser", "--internal-host", "127.0.0.1", "-p", str(port),
            "--data-dir", str(data_dir / "data"), "--username", EMAIL, "--password", "loupe-peer-password",
            "--user-token", TOKEN, "--enable-legacy-api-token",
        ],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    try:
        while True:
            if process.poll() is not None:
                pytest.fail("Label Studio exited:\n" + (data_dir / "server.log").read_text()[-3000:])
            try:
                if httpx.get(f"{url}/api/projects/", headers={"Authorization": f"Token {TOKEN}"}).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("Label Studio did not start:\n" + (data_dir / "server.log").read_text()[-3000:])
            time.sleep(1)
        yield url, TOKEN
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        log.close()
        shutil.rmtree(data_dir / "data", ignore_errors=True)


def _rest(label_studio):
    url, token = label_studio
    return httpx.Client(base_url=url, headers={"Authorization": f"Token {token}"}, timeout=60)


def _tasks(label_studio, ls_project_id):
    with _rest(label_studio) as client:
        response = client.get("/api/tasks/", params={"project": ls_project_id, "page_size": 1000})
        response.raise_for_status()
        body = response.json()
    return body["tasks"] if isinstance(body, dict) else body


def _annotate(label_studio, task_id, result):
    with _rest(label_studio) as client:
        response = client.post(f"/api/tasks/{task_id}/annotations/", json={"result": result})
        assert response.status_code == 201, response.text


def test_push_creates_a_pairwise_project_and_pull_brings_judgments_back_once(
    label_studio, pairwise_project, shapes_import
):
    """Push sends one task per item with the pairwise config; judgments made in Label Studio come back as
    Loupe judgments and pairs, and pulling again duplicates nothing."""
    services.items_import(project=pairwise_project, path=shapes_import)
    url, token = label_studio
    pushed = labelstudio_push(project=pairwise_project, url=url, api_key=token)
    assert pushed.created_project and (pushed.items, pushed.tasks) == (6, 6)
    with _rest(label_studio) as client:
        config = client.get(f"/api/projects/{pushed.ls_project_id}/").json()["label_config"]
    assert "<Pairwise" in config and "<Image" in config

    again = labelstudio_push(project=pairwise_project, url=url, api_key=token)
    assert (again.ls_project_id, again.created_project, again.tasks, again.skipped_items) == (
        pushed.ls_project_id, False, 0, 6,
    )  # fmt: skip

    tasks = _tasks(label_studio, pushed.ls_project_id)
    assert len(tasks) == 6 and tasks[0]["data"]["image"].startswith("data:image/png;base64,")
    expected = {}
    for index, task in enumerate(tasks):
        side = "left" if index % 3 else "right"
        result = {"from_name": "pw", "to_name": "text1,text2", "type": "pairwise", "value": {"selected": side}}
        _annotate(label_studio, task["id"], [result])
        data = task["data"]
        expected[data["external_id"]] = data["text1"] if side == "left" else data["text2"]

    pulled = labelstudio_pull(project=pairwise_project, url=url, api_key=token)
    assert (pulled.created, pulled.unchanged, pulled.unknown_items) == (6, 0, 0)
    judgments = PairwiseJudgment.objects.select_related("annotator")
    assert {j.annotator.username for j in judgments} == {f"labelstudio:{EMAIL}"}
    chosen = {p.item.external_id: p.chosen_text for p in PreferencePair.objects.select_related("item")}
    assert chosen == expected

    repeated = labelstudio_pull(project=pairwise_project, url=url, api_key=token)
    assert (repeated.created, repeated.unchanged) == (0, 6)
    assert PairwiseJudgment.objects.count() == 6 and PreferencePair.objects.count() == 6


def test_correction_rating_and_ranking_projects_round_trip_through_label_studio(label_studio, researcher):
    """Each kind's labeling config is accepted by Label Studio, and its annotations come back as Loupe's."""
    url, token = label_studio
    texts = ["A cup and a red plate.", "A cup.", "Nothing at all."]

    correction = project_with_items("ls-correction", "correction", {"c1": texts[:1]}, created_by=researcher)
    pushed = labelstudio_push(project=correction, url=url, api_key=token)
    (task,) = _tasks(label_studio, pushed.ls_project_id)
    span = {"start": 12, "end": 15}
    region = {"id": "r1", "to_name": "text"}
    _annotate(
        label_studio,
        task["id"],
        [
            {
                **region,
                "from_name": "label",
                "type": "labels",
                "value": {**span, "text": "red", "labels": ["attribute"]},
            },
            {**region, "from_name": "replacement", "type": "textarea", "value": {**span, "text": ["blue"]}},
        ],
    )
    assert labelstudio_pull(project=correction, url=url, api_key=token).created == 1
    (stored,) = Correction.objects.all()
    assert stored.corrected_text == "A cup and a blue plate."
    assert stored.segments == [{"start": 12, "end": 15, "replacement": "blue", "type": "attribute"}]
    assert PreferencePair.objects.get(project=correction).rejected_spans == [[12, 15]]

    rating = project_with_items("ls-rating", "rating", {"r1": texts[:2]}, created_by=researcher)
    pushed = labelstudio_push(project=rating, url=url, api_key=token)
    tasks = _tasks(label_studio, pushed.ls_project_id)
    assert len(tasks) == 2
    for task in tasks:
        level = "funny" if task["data"]["text"] == texts[0] else "unfunny"
        result = {"from_name": "rating", "to_name": "text", "type": "choices", "value": {"choices": [level]}}
        _annotate(label_studio, task["id"], [result])
    assert labelstudio_pull(project=rating, url=url, api_key=token).created == 2
    assert sorted(Rating.objects.values_list("response__text", "level")) == sorted([(texts[1], 0), (texts[0], 2)])

    ranking = project_with_items("ls-ranking", "ranking", {"k1": texts}, created_by=researcher)
    pushed = labelstudio_push(project=ranking, url=url, api_key=token)
    (task,) = _tasks(label_studio, pushed.ls_project_id)
    ids_by_text = {entry["body"]: entry["id"] for entry in task["data"]["items"]}
    order = [ids_by_text[texts[1]], ids_by_text[texts[0]], ids_by_text[texts[2]]]
    result = {"from_name": "rank", "to_name": "items", "type": "ranker", "value": {"ranker": {"rank": order}}}
    _annotate(label_studio, task["id"], [result])
    assert labelstudio_pull(project=ranking, url=url, api_key=token).created == 1
    (stored_ranking,) = Ranking.objects.all()
    assert [Response.objects.get(pk=pk).text for pk in stored_ranking.order] == [texts[1], texts[0], texts[2]]


def test_the_command_pushes_and_pulls(label_studio, researcher, capsys):
    """`manage.py labelstudio push` then `pull` print their reports as JSON."""
    url, token = label_studio
    project_with_items("ls-cli", "pairwise", {"x": ["one", "two"]}, created_by=researcher)
    call_command("labelstudio", "push", "--project", "ls-cli", "--url", url, "--api-key", token)
    pushed = json.loads(capsys.readouterr().out)
    assert pushed["tasks"] == 1
    call_command("labelstudio", "pull", "--project", "ls-cli", "--url", url, "--api-key", token)
    assert json.loads(capsys.readouterr().out)["created"] == 0
