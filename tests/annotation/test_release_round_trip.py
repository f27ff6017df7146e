"""RLHF-V and RLAIF-V releases through Loupe: a release-schema Parquet imported, frozen in a snapshot and
exported again keeps its own fields (`ds_name`, `origin_dataset`, `origin_split`, `idx`, `image_path`) and
its texts byte for byte, and the reference loaders' reading code takes the export. Text-only pairs are
refused by those formats with a message, and a broken embedded image is named by its file."""

import io
import json

import pyarrow.parquet as pq
import pytest
from PIL import Image

from annotation import services
from loupe.errors import ApplicationError
from tests.annotation.feedback import judge, people, project_with_items, refresh, responses_of
from tests.core.reference_loaders import (
    rlaif_v_samples,
    rlhf_v_samples,
    write_rlaif_v_release,
    write_rlhf_v_release,
)

pytestmark = pytest.mark.django_db

PROVENANCE = ("ds_name", "origin_dataset", "origin_split", "idx", "image_path")


def png(colour):
    buffer = io.BytesIO()
    Image.new("RGB", (9, 7), colour).save(buffer, "PNG")
    return buffer.getvalue()


# Non-ASCII texts (curly quotes, an accent, a CJK word) and idx values that sort differently as text.
RLHF_V_ROWS = [
    {
        "ds_name": "RLHF-V",
        "image": {"bytes": png(colour), "path": None},
        "text": json.dumps({"question": question, "chosen": chosen, "rejected": rejected}),
        "origin_dataset": "RLHF-V-Hall_v0",
        "origin_split": json.dumps({"model": "Muffin", "type": kind}),
        "idx": idx,
        "image_path": f"coco/{idx:012d}.jpg",
    }
    for idx, colour, question, chosen, rejected, kind in (
        (17, "red", "Describe the “room”.", "A café with one lamp.", "A café with two lamps and a dog.", "detail"),
        (5, "blue", "What is on the table?", "A cup of 茶.", "A cup of coffee and a cake.", "qa"),
        (120, "green", "How many people?", "Nobody is there.", "Three people are there.", "qa"),
    )
]

RLAIF_V_ROWS = [
    {
        "ds_name": "RLAIF-V",
        "image": {"bytes": png(colour), "path": None},
        "question": question,
        "chosen": chosen,
        "rejected": rejected,
        "origin_dataset": origin,
        "origin_split": json.dumps({"model": "OmniLMM-12B", "feedback_model": "LLaVA-NeXT"}),
        "idx": idx,
        "image_path": f"{origin}/{idx}.jpg",
    }
    for idx, colour, origin, question, chosen, rejected in (
        ("OKVQA_1", "red", "OK-VQA", "Why is it “red”?", "It is painted.", "It is on fire, naïvely."),
        ("VQAv2_22", "blue", "VQAv2", "What sport?", "Tennis.", "Football, in the rain."),
    )
]


def _export_rows(project, export_format, out):
    snapshot = services.snapshot_create(
        project=project, created_by=None, snapshot_filter=services.SnapshotFilter(test_fraction=0)
    )
    services.snapshot_export(snapshot=snapshot, export_format=export_format, out=out)
    return {str(row["idx"]): row for row in pq.read_table(next(out.glob("*.parquet"))).to_pylist()}


def test_an_rlhf_v_release_exports_with_its_own_fields_and_text(researcher, tmp_path):
    """RLHF-V release → import (corrections) → snapshot → rlhf-v export: the same provenance columns and
    values, `text` byte for byte, the same image bytes; Muffin's reading code takes the export."""
    path = write_rlhf_v_release(tmp_path / "RLHF-V-Dataset.parquet", RLHF_V_ROWS)
    project = services.project_create(slug="rlhf-v-release", kind="correction", created_by=researcher)
    report = services.items_import(project=project, path=path, import_format="rlhf-v")
    assert (report.created, report.pairs) == (3, 3)
    exported = _export_rows(project, "rlhf-v", tmp_path / "out")
    for row in RLHF_V_ROWS:
        again = exported[str(row["idx"])]
        assert {key: again[key] for key in PROVENANCE} == {key: row[key] for key in PROVENANCE}
        assert again["text"] == row["text"]
        assert again["image"]["bytes"] == row["image"]["bytes"]
    samples = rlhf_v_samples(tmp_path / "out" / "rlhf_v.parquet")
    assert sorted(s["metainfo"]["origin_idx"] for s in samples) == [5, 17, 120]
    assert {s["metainfo"]["origin_split"]["type"] for s in samples} == {"detail", "qa"}


def test_an_rlaif_v_release_exports_with_its_own_fields_and_texts(researcher, tmp_path):
    """RLAIF-V release → import (judgments) → snapshot → rlaif-v export: the same provenance columns and
    values, texts byte for byte, the same image bytes; RLAIF-V's reading code takes the export folder."""
    path = write_rlaif_v_release(tmp_path / "RLAIF-V-Dataset.parquet", RLAIF_V_ROWS)
    project = services.project_create(slug="rlaif-v-release", kind="pairwise", created_by=researcher)
    report = services.items_import(project=project, path=path, import_format="rlaif-v")
    assert (report.created, report.pairs) == (2, 2)
    exported = _export_rows(project, "rlaif-v", tmp_path / "out")
    for row in RLAIF_V_ROWS:
        again = exported[row["idx"]]
        fields = (*PROVENANCE, "question", "chosen", "rejected")
        assert {key: again[key] for key in fields} == {key: row[key] for key in fields}
        assert again["image"]["bytes"] == row["image"]["bytes"]
    samples = rlaif_v_samples(tmp_path / "out", cache_dir=tmp_path / "cache")
    assert sorted(s["metainfo"]["image_id"] for s in samples) == ["OK-VQA/OKVQA_1.jpg", "VQAv2/VQAv2_22.jpg"]


def test_import_items_reads_the_rlhf_v_release_parquet(researcher, tmp_path, capsys):
    """`import_items --format rlhf-v` takes the release Parquet (it used to answer "not UTF-8 text")."""
    from django.core.management import call_command

    from annotation.models import Item

    path = write_rlhf_v_release(tmp_path / "RLHF-V-Dataset.parquet", RLHF_V_ROWS)
    services.project_create(slug="rlhf-v-cli", kind="correction", created_by=researcher)
    call_command("import_items", str(path), "--project", "rlhf-v-cli", "--format", "rlhf-v")
    assert sorted(Item.objects.filter(project__slug="rlhf-v-cli").values_list("external_id", flat=True)) == [
        "120",
        "17",
        "5",
    ]


@pytest.mark.parametrize("export_format", ["rlaif-v", "rlhf-v"])
def test_text_only_pairs_are_refused_by_the_release_formats(researcher, export_format, tmp_path):
    """Pairs without an image cannot be written for loaders that read `image['bytes']` on every row: the
    export fails naming the item and the formats that take them, and leaves no folder behind."""
    project = project_with_items("text-only", "pairwise", {"t1": ["right", "wrong"]}, created_by=researcher)
    (person,) = people("judge", 1)
    judge(*responses_of(project, "t1"), person, "a")
    refresh(project)
    snapshot = services.snapshot_create(project=project, created_by=None)
    with pytest.raises(ApplicationError, match=f"{export_format}: item 't1' has no image") as caught:
        services.snapshot_export(snapshot=snapshot, export_format=export_format, out=tmp_path / "out")
    assert "trl-jsonl" in caught.value.message and caught.value.extra["field"] == "format"
    assert not (tmp_path / "out").exists()


def test_a_broken_embedded_image_is_named_by_its_file(researcher, tmp_path):
    """An embedded image Pillow cannot read is named by the row's image path, not by an in-memory buffer."""
    rows = [{**RLAIF_V_ROWS[0], "image": {"bytes": b"\x89PNG not really", "path": None}}]
    path = write_rlaif_v_release(tmp_path / "broken.parquet", rows)
    project = services.project_create(slug="broken", kind="pairwise", created_by=researcher)
    with pytest.raises(ApplicationError) as caught:
        services.items_import(project=project, path=path, import_format="rlaif-v")
    assert "'OK-VQA/OKVQA_1.jpg' is not a readable image" in caught.value.message
    assert "BytesIO" not in caught.value.message
    assert caught.value.extra["line"] == 1
