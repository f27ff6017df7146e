"""Exports of snapshots in every format: manifests, round trips back through the importers, the API download."""

import io
import json
import zipfile
from collections import Counter
from pathlib import Path

import pytest
from django.core.management import call_command

from annotation import services
from annotation.formats import read_manifest, read_pair_rows_jsonl
from annotation.models import Item
from annotation.selectors import snapshot_rows
from loupe.errors import ApplicationError
from tests.annotation.feedback import correct, judge, people, refresh, responses_of

pytestmark = pytest.mark.django_db

PAIR_FORMATS = [
    "trl-jsonl",
    "trl-parquet",
    "hf-dataset",
    "dense-jsonl",
    "rlaif-v",
    "rlhf-v",
    "reward-jsonl",
    "sft-jsonl",
]


@pytest.fixture
def pair_snapshot(pairwise_project, shapes_import, annotator):
    """Shapes-world items with images: five judged (truth preferred), one corrected (hallucination fixed)."""
    services.items_import(project=pairwise_project, path=shapes_import)
    records = [json.loads(line) for line in shapes_import.read_text().splitlines()]
    (corrector,) = people("corrector", 1)
    for index, record in enumerate(records):
        truth, hallucinated = responses_of(pairwise_project, record["external_id"])
        if index == 1:
            correct(hallucinated, corrector, [], truth.text)
        else:
            judge(truth, hallucinated, annotator, "a")
    refresh(pairwise_project)
    snapshot_filter = services.SnapshotFilter(test_fraction=0.34, seed=1)
    return services.snapshot_create(project=pairwise_project, created_by=None, snapshot_filter=snapshot_filter)


def _triples(rows) -> Counter:
    return Counter((row["prompt"], row["chosen"], row["rejected"]) for row in rows)


@pytest.mark.parametrize("export_format", PAIR_FORMATS)
def test_every_pair_format_writes_a_manifest_with_the_snapshot_hash_and_counts(pair_snapshot, export_format, tmp_path):
    """The manifest names the snapshot, the format version and as many rows as the snapshot holds."""
    out = services.snapshot_export(snapshot=pair_snapshot, export_format=export_format, out=tmp_path / "out")
    manifest = read_manifest(out)
    assert manifest["snapshot_hash"] == pair_snapshot.content_hash
    assert manifest["format"] == export_format and manifest["format_version"] >= 1
    assert manifest["counts"]["rows"] == pair_snapshot.n_rows == 6
    assert manifest["snapshot_stats"] == pair_snapshot.stats and pair_snapshot.stats["pair_stats"]
    for entry in manifest["files"]:
        assert (out / entry["path"]).is_file()


def test_trl_jsonl_holds_the_snapshot_pairs_with_their_images(pair_snapshot, tmp_path, settings):
    """Prompt, chosen and rejected equal the snapshot's rows; each image is the stored image's bytes."""
    out = services.snapshot_export(snapshot=pair_snapshot, export_format="trl-jsonl", out=tmp_path / "out")
    exported = list(read_pair_rows_jsonl(out / "pairs.jsonl"))
    rows = list(snapshot_rows(snapshot=pair_snapshot))
    assert _triples(vars(p) for p in exported) == _triples(rows)
    stored = {(r["chosen"], r["rejected"]): (Path(settings.MEDIA_ROOT) / r["image"]).read_bytes() for r in rows}
    for pair in exported:
        assert (out / pair.image).read_bytes() == stored[(pair.chosen, pair.rejected)]


def test_dense_pairs_keep_the_changed_spans(pair_snapshot, tmp_path):
    """The corrected pair's spans survive the export, and outside them chosen and rejected agree."""
    out = services.snapshot_export(snapshot=pair_snapshot, export_format="dense-jsonl", out=tmp_path / "out")
    (correction,) = [p for p in read_pair_rows_jsonl(out / "pairs.jsonl") if p.source == "correction"]
    (row,) = [r for r in snapshot_rows(snapshot=pair_snapshot) if r["source"] == "correction"]
    assert [list(s) for s in correction.chosen_spans] == row["chosen_spans"] != []
    assert [list(s) for s in correction.rejected_spans] == row["rejected_spans"] != []


def test_a_split_exports_only_its_side(pair_snapshot, tmp_path):
    """`split=train` writes the training rows only."""
    out = services.snapshot_export(
        snapshot=pair_snapshot, export_format="trl-jsonl", out=tmp_path / "out", options={"split": "train"}
    )
    assert read_manifest(out)["counts"]["rows"] == pair_snapshot.n_train
    assert 0 < pair_snapshot.n_train < pair_snapshot.n_rows


def test_conversational_trl_rows_are_message_lists(pair_snapshot, tmp_path):
    """With `conversational` the prompt is a user message with an image part before the text."""
    out = services.snapshot_export(
        snapshot=pair_snapshot, export_format="trl-jsonl", out=tmp_path / "out", options={"conversational": True}
    )
    record = json.loads((out / "pairs.jsonl").read_text().splitlines()[0])
    assert record["prompt"][0]["role"] == "user"
    assert [part["type"] for part in record["prompt"][0]["content"]] == ["image", "text"]
    assert record["chosen"][0]["role"] == "assistant"


def test_the_datasets_directory_loads_with_images(pair_snapshot, tmp_path):
    """`datasets.load_from_disk` gives every pair with its image decoded."""
    import datasets

    out = services.snapshot_export(snapshot=pair_snapshot, export_format="hf-dataset", out=tmp_path / "out")
    dataset = datasets.load_from_disk(str(out))
    assert len(dataset) == 6
    # With images the export is in trl's conversational form: the text is the message's last part.
    texts = [{key: row[key][0]["content"][-1]["text"] for key in ("prompt", "chosen", "rejected")} for row in dataset]
    assert _triples(texts) == _triples(snapshot_rows(snapshot=pair_snapshot))
    image = dataset[0]["images"][0]
    assert image.size == (96, 96)


# (export format, import format, data file, the kind of project the import needs)
ROUND_TRIPS = [
    ("rlaif-v", "rlaif-v", "rlaif_v.parquet", "pairwise"),
    ("rlhf-v", "rlhf-v", "rlhf_v.parquet", "correction"),
    ("label-studio-json", "label-studio", "tasks.json", "pairwise"),
]


@pytest.mark.parametrize(("export_format", "import_format", "data_file", "project_kind"), ROUND_TRIPS)
def test_export_then_import_gives_the_same_pairs(
    pair_snapshot, export_format, import_format, data_file, project_kind, researcher, tmp_path
):
    """Exported pairs imported into a fresh project give the same pairs, with the same images."""
    out = services.snapshot_export(snapshot=pair_snapshot, export_format=export_format, out=tmp_path / "out")
    project = services.project_create(slug="round-trip", kind=project_kind, created_by=researcher)
    report = services.items_import(project=project, path=out / data_file, import_format=import_format)
    assert report.pairs == 6
    again = services.snapshot_create(project=project, created_by=None)
    original, returned = list(snapshot_rows(snapshot=pair_snapshot)), list(snapshot_rows(snapshot=again))
    assert _triples(returned) == _triples(original)
    assert Counter(r["image"] for r in returned) == Counter(r["image"] for r in original)


def test_a_format_refuses_the_wrong_kind_of_snapshot_and_unknown_options(pair_snapshot, tmp_path):
    """Caption tables need rating counts, SciCap needs SFT rows; an unknown option is named."""
    for export_format in ("caption-contest-csv", "scicap"):
        with pytest.raises(ApplicationError, match="snapshots; snapshot"):
            services.snapshot_export(snapshot=pair_snapshot, export_format=export_format, out=tmp_path / "x")
    with pytest.raises(ApplicationError) as caught:
        services.snapshot_export(
            snapshot=pair_snapshot, export_format="rlaif-v", out=tmp_path / "x", options={"conversational": True}
        )
    assert caught.value.extra["field"] == "conversational"
    with pytest.raises(ApplicationError, match="Unknown export format"):
        services.snapshot_export(snapshot=pair_snapshot, export_format="csv-please", out=tmp_path / "x")


@pytest.mark.parametrize("export_format", ["trl-jsonl", "hf-dataset", "rlhf-v", "label-studio-json"])
def test_the_api_downloads_a_zip_of_the_export(pair_snapshot, researcher, api_client_for, export_format):
    """A manager downloads any format as a zip holding the data files and the manifest."""
    response = api_client_for(researcher).get(
        f"/api/v1/snapshots/{pair_snapshot.pk}/export/", {"export_format": export_format, "split": "all"}
    )
    assert response.status_code == 200
    bundle = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    manifest = json.loads(bundle.read("manifest.json"))
    assert manifest["format"] == export_format and manifest["snapshot_hash"] == pair_snapshot.content_hash
    assert {entry["path"] for entry in manifest["files"]} <= set(bundle.namelist())


def test_the_api_names_a_bad_format(pair_snapshot, researcher, api_client_for):
    """An unknown format is a 400 naming the field."""
    response = api_client_for(researcher).get(f"/api/v1/snapshots/{pair_snapshot.pk}/export/?export_format=nope")
    assert response.status_code == 400 and response.json()["extra"]["field"] == "format"


def test_the_cli_exports_a_split_in_a_format(pair_snapshot, tmp_path, capsys):
    """`export_dataset --format reward-jsonl --split test` writes the held-out rows with margins."""
    call_command(
        "export_dataset", "--snapshot", str(pair_snapshot.pk), "--format", "reward-jsonl", "--split", "test",
        "--out", str(tmp_path / "reward"),
    )  # fmt: skip
    lines = [json.loads(line) for line in (tmp_path / "reward" / "reward.jsonl").read_text().splitlines()]
    assert len(lines) == pair_snapshot.n_test and all("margin" in line for line in lines)
    printed = capsys.readouterr()
    assert "Wrote" in printed.out
    # A progress bar on stderr that ends at the rows written.
    assert f"{pair_snapshot.n_test}/{pair_snapshot.n_test}" in printed.err and "100%" in printed.err
    assert Item.objects.count() == 6
