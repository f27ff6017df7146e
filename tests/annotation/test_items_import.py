"""Imports of Loupe JSONL with images: all or nothing, with the line and field at fault named."""

import io
import json
import zipfile
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from annotation import services
from annotation.models import Item, Response
from loupe.errors import ApplicationError

pytestmark = [pytest.mark.django_db, pytest.mark.production_path]


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _write(path: Path, lines: list) -> Path:
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines))
    return path


def _assert_rejected(project, path: Path, *, line: int, field: str, images: Path | None = None) -> ApplicationError:
    with pytest.raises(ApplicationError) as caught:
        services.items_import(project=project, path=path, images=images)
    assert caught.value.extra["line"] == line, caught.value.message
    assert caught.value.extra["field"] == field, caught.value.message
    assert Item.objects.count() == 0 and Response.objects.count() == 0
    return caught.value


def test_a_good_file_imports_items_responses_and_images(pairwise_project, shapes_import, settings):
    """Every item arrives with its responses in order and its image stored and checked."""
    report = services.items_import(project=pairwise_project, path=shapes_import)
    assert report.as_dict() == services.ImportReport(created=6, unchanged=0).as_dict()
    source = _lines(shapes_import)
    for record in source:
        item = Item.objects.get(project=pairwise_project, external_id=record["external_id"])
        assert item.prompt == record["prompt"]
        assert [r.text for r in item.responses.order_by("position")] == [r["text"] for r in record["responses"]]
        stored = Path(settings.MEDIA_ROOT) / item.image
        assert stored.read_bytes() == (shapes_import.parent / record["image"]).read_bytes()


def test_importing_the_same_file_again_changes_nothing(pairwise_project, shapes_import):
    """Re-importing known external ids creates nothing and leaves the stored rows as they were."""
    services.items_import(project=pairwise_project, path=shapes_import)
    before = list(Item.objects.values_list("id", "external_id", "prompt", "image"))
    report = services.items_import(project=pairwise_project, path=shapes_import)
    assert report.as_dict() == services.ImportReport(created=0, unchanged=6).as_dict()
    assert list(Item.objects.values_list("id", "external_id", "prompt", "image")) == before
    assert Response.objects.count() == 12


def test_broken_json_names_its_line(pairwise_project, shapes_import):
    """A line that is not JSON rejects the file and names that line."""
    lines = _lines(shapes_import)
    _write(shapes_import, [lines[0], lines[1], '{"external_id": "x", ', *lines[2:]])
    _assert_rejected(pairwise_project, shapes_import, line=3, field=None)


def test_a_missing_field_is_named(pairwise_project, shapes_import):
    """A record without a prompt is refused with its line and the field 'prompt'."""
    lines = _lines(shapes_import)
    del lines[1]["prompt"]
    _write(shapes_import, lines)
    _assert_rejected(pairwise_project, shapes_import, line=2, field="prompt")


def test_a_field_of_the_wrong_type_is_named(pairwise_project, shapes_import):
    """Responses given as a string instead of a list are refused with the field named."""
    lines = _lines(shapes_import)
    lines[3]["responses"] = "a red circle"
    _write(shapes_import, lines)
    _assert_rejected(pairwise_project, shapes_import, line=4, field="responses")


def test_a_duplicate_external_id_in_the_file_is_refused(pairwise_project, shapes_import):
    """Two records with one external id: the second is named, and nothing is stored."""
    lines = _lines(shapes_import)
    lines[4]["external_id"] = lines[0]["external_id"]
    _write(shapes_import, lines)
    error = _assert_rejected(pairwise_project, shapes_import, line=5, field="external_id")
    assert "appears twice" in error.message


def test_an_unreadable_image_is_refused(pairwise_project, shapes_import):
    """A file that is not a decodable image rejects the import, naming the line and the image field."""
    lines = _lines(shapes_import)
    (shapes_import.parent / lines[2]["image"]).write_bytes(b"\x89PNG\r\n\x1a\nnot really a png")
    error = _assert_rejected(pairwise_project, shapes_import, line=3, field="image")
    assert "not a readable image" in error.message


def test_image_paths_may_not_leave_their_folder(pairwise_project, shapes_import, tmp_path):
    """`../` and absolute paths are refused, so an import cannot read files outside its folder."""
    (tmp_path / "secret.png").write_bytes((shapes_import.parent / _lines(shapes_import)[0]["image"]).read_bytes())
    for reference in ("../secret.png", str(tmp_path / "secret.png")):
        lines = _lines(shapes_import)
        lines[0]["image"] = reference
        _write(shapes_import, lines)
        error = _assert_rejected(pairwise_project, shapes_import, line=1, field="image")
        assert "relative" in error.message


def test_images_with_too_many_pixels_are_refused(pairwise_project, shapes_import, settings):
    """The pixel limit protects the server from decompression bombs."""
    settings.LOUPE_MAX_IMAGE_PIXELS = 100
    error = _assert_rejected(pairwise_project, shapes_import, line=1, field="image")
    assert "more than the limit of 100" in error.message


def test_urls_to_private_addresses_are_not_fetched(pairwise_project, shapes_import):
    """An image URL pointing at loopback or a private network is refused before any request is made."""
    for url in ("http://127.0.0.1:8000/admin.png", "http://localhost/x.png", "http://10.1.2.3/x.png"):
        lines = _lines(shapes_import)
        lines[0]["image"] = url
        _write(shapes_import, lines)
        error = _assert_rejected(pairwise_project, shapes_import, line=1, field="image")
        assert "private or local address" in error.message


def test_the_cli_imports_with_images_from_a_zip(pairwise_project, shapes_import, tmp_path):
    """`import_items --images archive.zip` resolves image paths inside the archive."""
    archive = tmp_path / "images.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        for record in _lines(shapes_import):
            bundle.write(shapes_import.parent / record["image"], record["image"])
    moved = tmp_path / "elsewhere" / "items.jsonl"
    moved.parent.mkdir()
    moved.write_text(shapes_import.read_text())
    out = io.StringIO()
    call_command("import_items", str(moved), "--project", pairwise_project.slug, "--images", str(archive), stdout=out)
    assert "Imported 6 new items" in out.getvalue()
    assert Item.objects.exclude(image="").count() == 6


def test_the_cli_reports_a_bad_file_and_stores_nothing(pairwise_project, shapes_import):
    """The command fails with the line and field, and the project stays empty."""
    lines = _lines(shapes_import)
    lines[1]["external_id"] = ["not", "an", "id"]
    _write(shapes_import, lines)
    with pytest.raises(CommandError, match="line 2"):
        call_command("import_items", str(shapes_import), "--project", pairwise_project.slug)
    assert Item.objects.count() == 0


def test_a_large_text_only_file_arrives_whole_and_in_order(pairwise_project, tmp_path):
    """Hundreds of items, stored many rows per statement across batches: every item, response and
    metadata value arrives as the file has it, with text that looks like SQL placeholders kept as text."""
    records = [
        {
            "external_id": f"big-{i:04d}",
            "prompt": f"Was ist auf Bild {i}? 100% sicher? %s ?",
            "responses": [{"text": f"Antwort {i}.{k} — « %(x)s ? »", "model": f"m{k}"} for k in range(2 + i % 4)],
            "meta": {"batch": i // 7} if i % 3 else {},
        }
        for i in range(523)
    ]
    path = _write(tmp_path / "big.jsonl", records)
    report = services.items_import(project=pairwise_project, path=path, batch_size=200)
    assert report.as_dict() == services.ImportReport(created=523, unchanged=0).as_dict()
    stored = {item.external_id: item for item in Item.objects.filter(project=pairwise_project)}
    assert [item.external_id for item in sorted(stored.values(), key=lambda item: item.pk)] == [
        r["external_id"] for r in records
    ]
    for record in records:
        item = stored[record["external_id"]]
        assert (item.prompt, item.meta, item.image) == (record["prompt"], record["meta"], "")
        assert [(r.text, r.model_name) for r in item.responses.order_by("position")] == [
            (r["text"], r["model"]) for r in record["responses"]
        ]
        assert all(r.project_id == pairwise_project.pk for r in item.responses.all())
    assert services.items_import(project=pairwise_project, path=path).as_dict()["unchanged"] == 523


def test_the_cli_shows_the_import_progressing_to_the_last_item(pairwise_project, tmp_path):
    """`import_items` draws a progress bar on stderr, batch by batch, that ends at every item of the file."""
    records = [
        {"external_id": f"p-{i}", "prompt": f"Prompt {i}", "responses": [{"text": "An answer."}, {"text": "Another."}]}
        for i in range(7)
    ]
    path = _write(tmp_path / "seven.jsonl", records)
    out, err = io.StringIO(), io.StringIO()
    call_command("import_items", str(path), "--project", pairwise_project.slug, stdout=out, stderr=err)
    assert "Imported 7 new items" in out.getvalue()
    assert "import seven.jsonl" in err.getvalue() and "7/7" in err.getvalue() and "100%" in err.getvalue()
