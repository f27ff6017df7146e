"""A finished export downloads under the same name from the API and from the datasets page: project,
snapshot, format and split (issue 18's loose end: the API used the file's content hash)."""

import pytest

from annotation.models import DataJob, DatasetSnapshot

pytestmark = pytest.mark.django_db


@pytest.fixture
def finished_export(pairwise_project, researcher, tmp_path):
    snapshot = DatasetSnapshot.objects.create(
        project=pairwise_project, content_hash="c" * 64, filters={"kind": "pairs"}, n_rows=1, n_train=1, n_test=0,
        path=str(tmp_path / "rows.jsonl"),
    )  # fmt: skip
    archive = tmp_path / f"{'9f' * 32}.zip"  # stored under its content hash
    archive.write_bytes(b"PK\x05\x06" + b"\x00" * 18)
    return DataJob.objects.create(
        kind="export", project=pairwise_project, snapshot=snapshot, status="succeeded", result_path=str(archive),
        params={"format": "dense-jsonl", "options": {"split": "test"}}, created_by=researcher,
    )  # fmt: skip


def test_the_api_and_the_page_name_the_zip_after_what_it_holds(finished_export, researcher, api_client_for, client):
    """Both give `<project>-snapshot-<id>-<format>-<split>.zip`, never the hash."""
    name = f"shapes-pairwise-snapshot-{finished_export.snapshot_id}-dense-jsonl-test.zip"
    from_api = api_client_for(researcher).get(f"/api/v1/jobs/{finished_export.pk}/download/")
    assert from_api.status_code == 200
    assert from_api["Content-Disposition"] == f'attachment; filename="{name}"'
    client.force_login(researcher)
    from_page = client.get(f"/projects/shapes-pairwise/datasets/exports/{finished_export.pk}/download/")
    assert from_page["Content-Disposition"] == from_api["Content-Disposition"]


def test_a_whole_snapshot_export_has_no_split_in_its_name(finished_export, researcher, api_client_for):
    DataJob.objects.filter(pk=finished_export.pk).update(params={"format": "trl-jsonl", "options": {"split": "all"}})
    response = api_client_for(researcher).get(f"/api/v1/jobs/{finished_export.pk}/download/")
    name = f"shapes-pairwise-snapshot-{finished_export.snapshot_id}-trl-jsonl.zip"
    assert response["Content-Disposition"] == f'attachment; filename="{name}"'
