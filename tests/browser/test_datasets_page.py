"""The datasets page in a real browser: a manager freezes a snapshot, picks an export format, follows the
job a real worker runs, and downloads the result."""

import io
import json
import zipfile

import pytest

from annotation import services
from tests.annotation.feedback import judge, people, refresh, responses_of

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_manager_freezes_exports_and_downloads_from_the_page(
    page, login, live_server, celery_worker_process, pairwise_project, shapes_import, researcher, screenshot_dir
):
    """Freeze with a filter, choose dense pairs for the train split, and download the zip when the job ends."""
    services.items_import(project=pairwise_project, path=shapes_import)
    (person,) = people("judge", 1)
    for line in shapes_import.read_text().splitlines():
        truth, hallucinated = responses_of(pairwise_project, json.loads(line)["external_id"])
        judge(truth, hallucinated, person, "a")
    refresh(pairwise_project)

    login(page, researcher)
    page.goto(f"{live_server.url}/projects/{pairwise_project.slug}/datasets/")
    assert "6 preference pairs" in page.inner_text("main")
    page.fill("#snapshot-form [name=test_fraction]", "0.5")
    page.click("#snapshot-form button[type=submit]")
    page.wait_for_selector("#snapshots tr[data-snapshot]")
    snapshot = pairwise_project.snapshots.get()

    form = f".export-form[data-snapshot='{snapshot.pk}']"
    page.select_option(f"{form} [name=format]", "rlaif-v")
    assert page.is_disabled(f"{form} [name=conversational]"), "RLAIF-V has no conversational form"
    page.select_option(f"{form} [name=format]", "dense-jsonl")
    page.select_option(f"{form} [name=split]", "train")
    page.click(f"{form} button[type=submit]")
    link = page.wait_for_selector("#jobs a:has-text('Download zip')", timeout=60_000)
    page.screenshot(path=str(screenshot_dir / "datasets.png"), full_page=True)

    download = page.request.get(live_server.url + link.get_attribute("href"))
    assert download.ok
    bundle = zipfile.ZipFile(io.BytesIO(download.body()))
    manifest = json.loads(bundle.read("manifest.json"))
    assert manifest["format"] == "dense-jsonl" and manifest["counts"]["rows"] == snapshot.n_train
    lines = bundle.read("pairs.jsonl").decode().splitlines()
    assert {json.loads(line)["meta"]["split"] for line in lines} == {"train"}


def test_the_page_is_for_managers_only(client, pairwise_project, annotator):
    """An annotator of the project gets the same 404 as a stranger."""
    client.force_login(annotator)
    assert client.get(f"/projects/{pairwise_project.slug}/datasets/").status_code == 404
