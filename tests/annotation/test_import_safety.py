"""Nothing dropped, nothing left behind: caption-contest uploads keep the name that identifies them, an
existing id with other content is refused rather than reported unchanged, images come into place only
with the rows that point to them, and an export appears whole or not at all."""

import csv
import io
import os
import time
from pathlib import Path

import pytest
from PIL import Image

from annotation import services
from annotation.images import ImageStaging
from annotation.models import DataJob, Item, Response
from annotation.services.imports import STAGING_MAX_AGE, caption_contest_key
from loupe.errors import ApplicationError
from tests.annotation.feedback import judge, people, refresh, responses_of
from tests.conftest import SHARED_DATA

pytestmark = pytest.mark.django_db

CONTESTS = SHARED_DATA / "caption-contest"
REAL_660 = CONTESTS / "660_summary_KLUCB.first2000.csv"
REAL_691 = CONTESTS / "691_summary_KLUCB.first2000.csv"


@pytest.fixture
def media(settings, tmp_path) -> Path:
    """A media folder of the test's own, so "no file was written" can be checked whole."""
    settings.MEDIA_ROOT = str(tmp_path / "media")
    return tmp_path / "media"


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def _cartoon(path: Path, colour: str) -> Path:
    Image.new("RGB", (40, 30), colour).save(path)
    return path


def _without_contest_column(source: Path, target: Path) -> Path:
    """The real table as the older dashboards publish it: the same columns, but no `contest`."""
    with open(source, encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    columns = [name for name in rows[0] if name != "contest"]
    with open(target, "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return target


def _upload(client, slug: str, table: Path, *, name: str, cartoon: Path | None = None, endpoint: str = "imports"):
    file = io.BytesIO(table.read_bytes())
    file.name = name
    data = {"format": "caption-contest", "file": file}
    if cartoon is not None:
        data["image"] = cartoon.open("rb")
    return client.post(f"/api/v1/projects/{slug}/{endpoint}/", data, format="multipart")


@pytest.fixture
def contest_project(researcher):
    return services.project_create(slug="contests", kind="rating", created_by=researcher)


def test_a_contest_without_its_column_is_named_by_the_number_its_file_name_starts_with():
    """The archive's dashboards are `<contest>_summary_<algorithm>.csv`; other names keep their stem, made safe."""
    assert caption_contest_key("660_summary_KLUCB.first2000.csv") == "660"
    assert caption_contest_key("691.csv") == "691"
    assert caption_contest_key("2019x contest.csv") == "2019x_contest"
    assert caption_contest_key("my contest (final)!.csv") == "my_contest_final"
    assert caption_contest_key("...csv") == "contest"


def test_two_real_contests_uploaded_one_after_the_other_land_as_two_items(
    contest_project, researcher, api_client_for, tmp_path, media
):
    """The real 660 table (with its `contest` column) and the real 691 table without that column, both
    uploaded through the API: two items, 660 and 691, each with its 2,000 captions and its own cartoon."""
    client = api_client_for(researcher)
    first = _upload(client, "contests", REAL_660, name=REAL_660.name, cartoon=_cartoon(tmp_path / "a.png", "white"))
    assert first.status_code == 201, first.content
    second_table = _without_contest_column(REAL_691, tmp_path / "upload.csv")
    second = _upload(
        client, "contests", second_table, name="691_summary_KLUCB.csv", cartoon=_cartoon(tmp_path / "b.png", "black")
    )
    assert second.status_code == 201, second.content
    assert (first.json()["created"], second.json()["created"], second.json()["unchanged"]) == (1, 1, 0)
    items = {item.external_id: item for item in Item.objects.filter(project=contest_project)}
    assert sorted(items) == ["660", "691"]
    assert Response.objects.filter(item=items["691"]).count() == 2000
    assert items["660"].image != items["691"].image
    assert sorted(p.name for p in _files(media)) == sorted(Path(i.image).name for i in items.values())


def test_an_import_job_names_a_contest_by_the_uploaded_file_not_its_spooled_copy(
    contest_project, researcher, api_client_for, tmp_path, media
):
    """A background import moves the upload to `source-<name>` in the job's folder; the item is still named
    by the name the user gave the file."""
    table = _without_contest_column(REAL_660, tmp_path / "upload.csv")
    started = _upload(
        api_client_for(researcher), "contests", table, name="660_summary_KLUCB.csv", endpoint="import-jobs"
    )
    assert started.status_code == 202, started.content
    services.data_job_execute(job_id=started.json()["id"])
    job = DataJob.objects.get(pk=started.json()["id"])
    assert job.status == "succeeded", job.log
    assert list(Item.objects.values_list("external_id", flat=True)) == ["660"]


def test_an_existing_id_with_other_content_is_refused_never_reported_unchanged(
    contest_project, researcher, api_client_for, tmp_path, media
):
    """Two tables uploaded under one name (no `contest` column) are one id: the second, with other captions,
    is refused naming the id, and its cartoon is not written. The same table again is unchanged."""
    client = api_client_for(researcher)
    first_table = _without_contest_column(REAL_660, tmp_path / "660.csv")
    cartoon = _cartoon(tmp_path / "a.png", "white")
    assert _upload(client, "contests", first_table, name="contest.csv", cartoon=cartoon).status_code == 201
    before = _files(media)

    other = _without_contest_column(REAL_691, tmp_path / "691.csv")
    refused = _upload(client, "contests", other, name="contest.csv", cartoon=_cartoon(tmp_path / "b.png", "black"))
    assert refused.status_code == 400
    body = refused.json()
    assert body["extra"] == {
        "line": 1,
        "field": "external_id",
        "external_id": "contest",
        "differs": ["image", "responses"],
    }
    assert body["message"].startswith("line 1: item 'contest' is already in the project with another image, responses;")
    assert "rename the file" in body["message"]
    assert _files(media) == before
    assert Response.objects.count() == 2000

    again = _upload(client, "contests", first_table, name="contest.csv", cartoon=cartoon)
    assert again.status_code == 201 and (again.json()["created"], again.json()["unchanged"]) == (0, 1)


def test_a_changed_loupe_jsonl_item_is_refused_by_its_line(pairwise_project, shapes_import, media):
    """Re-importing a file in which one known item has another answer names that item and its line."""
    services.items_import(project=pairwise_project, path=shapes_import)
    lines = shapes_import.read_text().splitlines()
    lines[3] = lines[3].replace('"text": "', '"text": "Not ', 1)
    shapes_import.write_text("\n".join(lines) + "\n")
    with pytest.raises(ApplicationError) as caught:
        services.items_import(project=pairwise_project, path=shapes_import)
    assert caught.value.extra["line"] == 4 and caught.value.extra["differs"] == ["responses"]
    assert not Response.objects.filter(text__startswith="Not ").exists()


def test_an_import_failing_midway_leaves_no_image_and_none_in_place_before_the_rows(
    pairwise_project, shapes_import, media
):
    """Stopped after two of three batches (a cancel, a crash): no image was in place while the rows were
    not stored (all a killed import could leave), and nothing at all remains after the failure."""
    seen_in_place = []

    def progress(done: int, total: int) -> None:
        seen_in_place.extend(_files(media / "items"))
        if done == 4:
            raise RuntimeError("stopped mid-way")

    with pytest.raises(RuntimeError, match="stopped mid-way"):
        services.items_import(project=pairwise_project, path=shapes_import, batch_size=2, progress=progress)
    assert seen_in_place == []
    assert _files(media) == [] and not Item.objects.exists()


def test_a_bad_line_after_some_images_leaves_no_file(pairwise_project, shapes_import, media):
    """A record refused at line 5 after four images were checked and staged: the media folder stays empty."""
    lines = shapes_import.read_text().splitlines()
    lines[4] = "{not json"
    shapes_import.write_text("\n".join(lines) + "\n")
    with pytest.raises(ApplicationError):
        services.items_import(project=pairwise_project, path=shapes_import, batch_size=2)
    assert _files(media) == []


def test_a_reimport_does_not_write_the_images_again(pairwise_project, shapes_import, media):
    """Items already there keep their image files untouched (same inode and modification time)."""
    services.items_import(project=pairwise_project, path=shapes_import)
    before = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in _files(media)}
    assert len(before) == 6
    time.sleep(0.01)
    report = services.items_import(project=pairwise_project, path=shapes_import)
    assert report.unchanged == 6
    assert {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in _files(media)} == before


def test_a_killed_imports_staging_folder_is_swept_once_stale(pairwise_project, shapes_import, media):
    """A staging folder left by a killed import goes at the next import once a day old; a young one (an
    import still running) stays."""
    stale, young = media / ".incoming" / "1-dead", media / ".incoming" / "2-running"
    for folder in (stale, young):
        folder.mkdir(parents=True)
        (folder / "x.png").write_bytes(b"partial")
    old = time.time() - STAGING_MAX_AGE - 60
    os.utime(stale, (old, old))
    services.items_import(project=pairwise_project, path=shapes_import)
    assert not stale.exists() and young.exists()
    assert ImageStaging.sweep(media, max_age=0) == 1 and not young.exists()


@pytest.fixture
def pair_snapshot(pairwise_project, shapes_import):
    services.items_import(project=pairwise_project, path=shapes_import)
    (person,) = people("judge", 1)
    for item in Item.objects.filter(project=pairwise_project):
        first, second = responses_of(pairwise_project, item.external_id)[:2]
        judge(first, second, person, "a")
    refresh(pairwise_project)
    return services.snapshot_create(project=pairwise_project, created_by=None)


def test_an_export_failing_midway_leaves_no_folder(pair_snapshot, tmp_path):
    """While an export writes, nothing is under the destination's name (all a killed export could leave
    there); stopped after its rows were read, it leaves neither the destination nor its partial folder."""
    out = tmp_path / "exports" / "out"
    seen = []

    def progress(done: int, total: int) -> None:
        seen.append(out.exists())
        raise RuntimeError("stopped mid-way")

    with pytest.raises(RuntimeError, match="stopped mid-way"):
        services.snapshot_export(snapshot=pair_snapshot, export_format="trl-jsonl", out=out, progress=progress)
    assert seen == [False]
    assert list((tmp_path / "exports").iterdir()) == []


def test_an_export_replaces_an_earlier_one_and_refuses_a_foreign_folder(pair_snapshot, tmp_path):
    """A folder holding an earlier export is replaced whole; a folder of other files is refused untouched."""
    out = tmp_path / "out"
    services.snapshot_export(snapshot=pair_snapshot, export_format="trl-jsonl", out=out)
    (out / "stale.txt").write_text("from before")
    services.snapshot_export(snapshot=pair_snapshot, export_format="dense-jsonl", out=out)
    names = {p.name for p in out.iterdir()}
    assert "stale.txt" not in names and {"manifest.json", "pairs.jsonl"} <= names
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no partial or old folder

    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep")
    with pytest.raises(ApplicationError, match="is not an earlier export"):
        services.snapshot_export(snapshot=pair_snapshot, export_format="trl-jsonl", out=foreign)
    assert [p.name for p in foreign.iterdir()] == ["notes.txt"]
