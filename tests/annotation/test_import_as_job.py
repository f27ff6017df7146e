"""Issue 16 item 7 (remainder): the synchronous import API runs a large upload as an import job (202 with the
job) instead of holding a web thread; a small one is still imported at once (201 with the report)."""

import io
import json

import pytest

from annotation import services
from annotation.models import DataJob, Item

pytestmark = [pytest.mark.django_db]


def _jsonl(n: int) -> io.BytesIO:
    lines = [
        {"external_id": f"x{i}", "prompt": "Describe.", "responses": [{"text": "A cup."}, {"text": f"A plate {i}."}]}
        for i in range(n)
    ]
    upload = io.BytesIO("\n".join(json.dumps(line) for line in lines).encode())
    upload.name = "items.jsonl"
    return upload


@pytest.fixture
def threshold(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    settings.LOUPE_SYNC_IMPORT_MAX_BYTES = 1000
    return 1000


def test_a_large_upload_answers_202_with_an_import_job_that_imports_it(
    threshold, pairwise_project, researcher, api_client_for, django_capture_on_commit_callbacks
):
    upload = _jsonl(30)
    assert len(upload.getvalue()) > threshold
    with django_capture_on_commit_callbacks() as queued:
        response = api_client_for(researcher).post(
            "/api/v1/projects/shapes-pairwise/imports/", {"format": "loupe-jsonl", "file": upload}, format="multipart"
        )
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["kind"] == "import" and body["status"] == "queued" and body["params"]["file_name"] == "items.jsonl"
    assert len(queued) == 1  # the job's task is sent once the request's transaction commits
    assert not Item.objects.exists()  # nothing imported in the web process
    services.data_job_execute(job_id=body["id"])  # what the worker does with the task
    job = DataJob.objects.get(pk=body["id"])
    assert job.status == "succeeded", job.log
    assert Item.objects.filter(project=pairwise_project).count() == 30
    detail = api_client_for(researcher).get(f"/api/v1/jobs/{body['id']}/").json()
    assert detail["result"]["created"] == 30


def test_a_small_upload_is_imported_at_once(threshold, pairwise_project, researcher, api_client_for):
    upload = _jsonl(3)
    assert len(upload.getvalue()) <= threshold
    response = api_client_for(researcher).post(
        "/api/v1/projects/shapes-pairwise/imports/", {"format": "loupe-jsonl", "file": upload}, format="multipart"
    )
    assert response.status_code == 201, response.content
    assert response.json()["created"] == 3 and not DataJob.objects.exists()


def test_a_large_upload_for_an_unfit_project_is_a_400_and_no_job(
    threshold, pairwise_project, researcher, api_client_for
):
    upload = io.BytesIO(b"caption,funny,somewhat_funny,unfunny\n" + b"a caption,1,2,3\n" * 100)
    upload.name = "contest.csv"
    response = api_client_for(researcher).post(
        "/api/v1/projects/shapes-pairwise/imports/", {"format": "caption-contest", "file": upload}, format="multipart"
    )
    assert response.status_code == 400 and response.json()["extra"]["field"] == "format"
    assert not DataJob.objects.exists()
