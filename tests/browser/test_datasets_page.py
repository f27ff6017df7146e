"""The datasets page in a real browser: a manager freezes a snapshot, picks an export format, follows the
job a real worker runs, and downloads the result."""

import io
import json
import zipfile

import pytest

from annotation import services
from tests.annotation.feedback import judge, people, refresh, responses_of
from tests.browser.conftest import above_the_fold

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

    with page.expect_download() as saved:
        link.click()
    # Saved under a name that says what it is, not the file's content hash.
    assert saved.value.suggested_filename == f"{pairwise_project.slug}-snapshot-{snapshot.pk}-dense-jsonl-train.zip"
    download = page.request.get(live_server.url + link.get_attribute("href"))
    assert download.ok
    bundle = zipfile.ZipFile(io.BytesIO(download.body()))
    manifest = json.loads(bundle.read("manifest.json"))
    assert manifest["format"] == "dense-jsonl" and manifest["counts"]["rows"] == snapshot.n_train
    lines = bundle.read("pairs.jsonl").decode().splitlines()
    assert {json.loads(line)["meta"]["split"] for line in lines} == {"train"}


def test_the_page_is_for_managers_only(client, pairwise_project, annotator, outsider):
    """An annotator of the project is told it takes the manager role (403); a stranger gets the 404 of a
    project that does not exist."""
    client.force_login(annotator)
    assert client.get(f"/projects/{pairwise_project.slug}/datasets/").status_code == 403
    client.force_login(outsider)
    assert client.get(f"/projects/{pairwise_project.slug}/datasets/").status_code == 404


def _judged_pairwise(project, shapes_import):
    services.items_import(project=project, path=shapes_import)
    (person,) = people("judge", 1)
    for line in shapes_import.read_text().splitlines():
        truth, hallucinated = responses_of(project, json.loads(line)["external_id"])
        judge(truth, hallucinated, person, "a")
    refresh(project)


def test_freeze_errors_show_by_the_button_and_a_degenerate_split_is_warned_about(
    laptop_page, login, live_server, pairwise_project, shapes_import, researcher, screenshot_dir
):
    """At 1366×768: too few items for the fraction, a test fraction of 0 or 0.6, and a split by response that drops
    pairs are warned about before freezing; an unknown annotator and an
    out-of-range fraction are refused next to the Freeze button, naming the field, which is marked; the Jobs
    card says nothing; a good freeze reloads the page and says what it froze by the button."""
    _judged_pairwise(pairwise_project, shapes_import)
    page = laptop_page
    login(page, researcher)
    page.goto(f"{live_server.url}/projects/{pairwise_project.slug}/datasets/")
    form = "#snapshot-form"
    # 0.1 of 6 items is 0.6 of an item: most such splits have no test side.
    assert "Only 6 items: split by item" in page.inner_text("#split-warning")
    page.fill(f"{form} [name=test_fraction]", "0.3")
    assert page.is_hidden("#split-warning")

    page.fill(f"{form} [name=test_fraction]", "0")
    assert "nothing is held out" in page.inner_text("#split-warning")
    page.fill(f"{form} [name=test_fraction]", "0.6")
    assert "leaving little to train on" in page.inner_text("#split-warning")
    page.select_option(f"{form} [name=split_by]", "response")
    page.fill(f"{form} [name=test_fraction]", "0.2")
    assert "4% of the pairs go to test and 32% are dropped" in page.inner_text("#split-warning")
    page.select_option(f"{form} [name=split_by]", "")

    page.fill(f"{form} [name=annotators]", "nobody-here")
    page.click(f"{form} button[type=submit]")
    page.wait_for_selector("#freeze-status.error")
    assert "No annotator named nobody-here" in page.inner_text("#freeze-status")
    assert page.get_attribute(f"{form} [name=annotators]", "aria-invalid") == "true"
    page.locator(f"{form} button[type=submit]").scroll_into_view_if_needed()
    page.screenshot(path=str(screenshot_dir / "datasets-freeze-error-1366x768.png"))
    button, said = (
        page.locator(f"{form} button[type=submit]").bounding_box(),
        page.locator("#freeze-status").bounding_box(),
    )
    assert abs(said["y"] - button["y"]) < 40, "the error is not next to the Freeze button"

    page.fill(f"{form} [name=annotators]", "")
    page.evaluate("document.querySelector('#snapshot-form [name=test_fraction]').removeAttribute('max')")
    page.fill(f"{form} [name=test_fraction]", "0.95")
    page.click(f"{form} button[type=submit]")
    page.wait_for_function("() => document.getElementById('freeze-status').textContent.includes('test_fraction')")
    assert "less than or equal to 0.9" in page.inner_text("#freeze-status")
    assert page.get_attribute(f"{form} [name=test_fraction]", "aria-invalid") == "true"
    assert page.get_attribute(f"{form} [name=annotators]", "aria-invalid") is None
    assert page.inner_text("#datasets-status") == ""
    assert pairwise_project.snapshots.count() == 0

    page.fill(f"{form} [name=test_fraction]", "0.5")
    page.click(f"{form} button[type=submit]")
    page.wait_for_selector("#snapshots tr[data-snapshot]")
    snapshot = pairwise_project.snapshots.get()
    assert f"Snapshot {snapshot.pk}: 6 rows" in page.inner_text("#freeze-status")
    assert above_the_fold(page, "#freeze-status") or page.is_visible("#freeze-status")


def test_the_freeze_form_shows_the_fields_of_the_project_and_snapshot_kind(
    laptop_page, login, live_server, project_with, researcher, screenshot_dir
):
    """A pairwise project: pairs only, its own source and AI, agreement with its help, no [GOOD] threshold.
    A rating project: no agreement; choosing sft hides the pair fields and shows the [GOOD] threshold."""
    pairwise = project_with(
        "pairwise", [{"external_id": "p1", "prompt": "Q", "responses": [{"text": "a"}, {"text": "b"}]}]
    )
    page = laptop_page
    login(page, researcher)
    page.goto(f"{live_server.url}/projects/{pairwise.slug}/datasets/")
    form = "#snapshot-form"
    assert page.eval_on_selector_all(f"{form} [name=kind] option", "os => os.map(o => o.value)") == ["pairs"]
    assert page.eval_on_selector_all(f"{form} [name=sources]", "bs => bs.map(b => b.value)") == ["pairwise", "ai"]
    assert "share of the votes the chosen answer won" in page.inner_text(f"{form} label:has([name=min_agreement])")
    assert "slightly 1, clearly 2" in page.inner_text(f"{form} label:has([name=min_margin])")
    assert page.locator(f"{form} [name=sft_threshold]").count() == 0

    rating = project_with("rating", [{"external_id": "r1", "prompt": "Q", "responses": [{"text": "a"}]}])
    page.goto(f"{live_server.url}/projects/{rating.slug}/datasets/")
    assert page.locator(f"{form} [name=min_agreement]").count() == 0
    assert page.eval_on_selector_all(f"{form} [name=kind] option", "os => os.map(o => o.value)") == [
        "pairs",
        "sft",
        "ratings",
    ]
    assert page.is_visible(f"{form} [name=min_margin]") and page.is_hidden(f"{form} [name=sft_threshold]")
    assert "mean rating" in page.inner_text(f"{form} label:has([name=min_margin])")
    page.select_option(f"{form} [name=kind]", "sft")
    assert page.is_visible(f"{form} [name=sft_threshold]")
    assert page.is_hidden(f"{form} [name=min_margin]") and page.is_hidden(f"{form} fieldset.sources")
    page.locator("#freeze").scroll_into_view_if_needed()
    page.screenshot(path=str(screenshot_dir / "datasets-freeze-sft-1366x768.png"))
    page.select_option(f"{form} [name=kind]", "ratings")
    assert page.is_hidden(f"{form} [name=sft_threshold]") and page.is_hidden(f"{form} [name=min_margin]")


def test_an_export_downloads_under_its_project_and_snapshot_name_for_managers_only(
    client, pairwise_project, shapes_import, researcher, annotator, outsider, settings
):
    """The page's download link names the zip after project, snapshot, format and split; the job must be the
    project's, finished, and the user its manager."""
    from annotation.models import DataJob

    _judged_pairwise(pairwise_project, shapes_import)
    snapshot = services.snapshot_create(project=pairwise_project, created_by=researcher)
    job = services.data_job_export_start(snapshot=snapshot, export_format="trl-jsonl", created_by=researcher)
    url = f"/projects/{pairwise_project.slug}/datasets/exports/{job.pk}/download/"
    client.force_login(researcher)
    assert client.get(url).status_code == 400, "a queued export has no file yet"
    services.data_job_execute(job_id=job.pk)
    assert DataJob.objects.get(pk=job.pk).status == "succeeded"

    response = client.get(url)
    assert response.status_code == 200
    name = f"{pairwise_project.slug}-snapshot-{snapshot.pk}-trl-jsonl.zip"
    assert response["Content-Disposition"] == f'attachment; filename="{name}"'
    assert zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content))).read("manifest.json")
    assert client.get(f"/projects/other-{pairwise_project.slug}/datasets/exports/{job.pk}/download/").status_code == 404

    client.force_login(annotator)
    assert client.get(url).status_code == 403
    client.force_login(outsider)
    assert client.get(url).status_code == 404
