"""RLAIF-V-style Parquet: export with the RLAIF-V dataset's columns, import back to the same pairs."""

import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from annotation.formats import FORMAT_READERS, FORMAT_WRITERS, FormatError
from annotation.formats.convert import pairwise_votes_from_record
from annotation.formats.rlaif_v import COLUMNS, read_rlaif_v_parquet, write_rlaif_v_parquet
from annotation.pair_rules import AIScored, PairRow, pairs_from_ai_feedback, pairs_from_pairwise
from tests.core.reference_loaders import rlaif_v_samples


@pytest.fixture
def image_root(tmp_path):
    root = tmp_path / "media"
    root.mkdir()
    for name, colour in (("a.png", "red"), ("b.png", "navy")):
        Image.new("RGB", (12, 9), colour).save(root / name)
    return root


@pytest.fixture
def ai_pairs():
    responses = []
    for item, image in (("q1", "a.png"), ("q2", "b.png")):
        for k in range(4):
            text = f"The image of {item} shows {k} objects, described in some detail number {k}."
            responses.append(AIScored(item, f"Describe {item}.", image, text, None, 6, k))
    return list(pairs_from_ai_feedback(responses, length_balance=False))


def test_export_has_the_rlaif_v_columns_and_embedded_images(ai_pairs, image_root, tmp_path):
    """The file has RLAIF-V's columns in its order, one row per pair, with the image bytes inside."""
    manifest = FORMAT_WRITERS["rlaif-v"](
        rows=ai_pairs, out_dir=tmp_path / "out", snapshot_hash="s", image_root=image_root
    )
    table = pq.read_table(tmp_path / "out" / "rlaif_v.parquet")
    assert tuple(table.column_names) == COLUMNS
    rows = table.to_pylist()
    assert len(rows) == len(ai_pairs) == manifest["counts"]["rows"] == 4
    for row, pair in zip(rows, ai_pairs, strict=True):
        assert (row["question"], row["chosen"], row["rejected"]) == (pair.prompt, pair.chosen, pair.rejected)
        assert row["image"]["bytes"] == (image_root / pair.image).read_bytes()
        assert json.loads(row["origin_split"])["source"] == "ai"


def test_export_then_import_gives_the_same_pairs(ai_pairs, image_root, tmp_path):
    """Export → import → pairs gives back every (prompt, chosen, rejected) with its image."""
    write_rlaif_v_parquet(rows=ai_pairs, out_dir=tmp_path / "out", snapshot_hash="s", image_root=image_root)
    records = list(FORMAT_READERS["rlaif-v"](tmp_path / "out" / "rlaif_v.parquet", batch_rows=3))
    again = [pair for record in records for pair in pairs_from_pairwise(pairwise_votes_from_record(record))]
    assert [(p.prompt, p.chosen, p.rejected) for p in again] == [(p.prompt, p.chosen, p.rejected) for p in ai_pairs]
    for record, pair in zip(records, ai_pairs, strict=True):
        assert record.image_bytes == (image_root / pair.image).read_bytes()
        assert record.image == pair.image
    assert [r.line for r in records] == [1, 2, 3, 4]


def test_rlaif_v_reading_code_takes_the_export_folder(ai_pairs, image_root, tmp_path):
    """RLAIF-V's `RLAIFVDataset` reading code (`load_dataset(folder)`, `image['bytes']`, JSON `origin_split`)
    gets every pair from the export folder, manifest and all."""
    write_rlaif_v_parquet(rows=ai_pairs, out_dir=tmp_path / "out", snapshot_hash="s", image_root=image_root)
    samples = rlaif_v_samples(tmp_path / "out", cache_dir=tmp_path / "cache")
    assert [(s["question"]["value"], s["chosen"]["value"], s["rejected"]["value"]) for s in samples] == [
        (f"<image>\n{p.prompt}", p.chosen, p.rejected) for p in ai_pairs
    ]
    assert samples[0]["image"].size == (12, 9)
    assert [s["idx"] for s in samples] == ["0", "1", "2", "3"]
    assert samples[0]["metainfo"]["origin_split"]["source"] == "ai"


def test_provenance_kept_from_an_import_is_written_back(image_root, tmp_path):
    """A pair whose item came from a release carries the release's fields; its idx goes to the item's first
    pair only, and pairs of Loupe's own items get Loupe's fields."""
    kept = {
        "ds_name": "RLAIF-V",
        "origin_dataset": "VQAv2",
        "origin_split": '{"model": "x"}',
        "idx": "42",
        "image_path": "v/1.jpg",
    }
    rows = [
        PairRow("42", "q", "a.png", "good", "bad", "pairwise", meta={"provenance": kept}),
        PairRow("42", "q", "a.png", "good", "worse", "pairwise", meta={"provenance": kept}),
        PairRow("own", "q2", "b.png", "fine", "poor", "pairwise", margin=1.0),
    ]
    write_rlaif_v_parquet(rows=rows, out_dir=tmp_path / "out", snapshot_hash="s", image_root=image_root)
    first, second, own = pq.read_table(tmp_path / "out" / "rlaif_v.parquet").to_pylist()
    assert {key: first[key] for key in kept} == kept
    assert {key: second[key] for key in kept} == {**kept, "idx": "1"}
    assert (own["ds_name"], own["origin_dataset"], own["idx"], own["image_path"]) == ("loupe", "loupe", "2", "b.png")
    assert json.loads(own["origin_split"])["margin"] == 1.0


def test_a_pair_without_an_image_is_refused_naming_its_item(image_root, tmp_path):
    """The reference loader reads `image['bytes']` on every row: a text-only pair is refused, not written null."""
    rows = [PairRow("k", "q", "a.png", "c", "r", "ai"), PairRow("text-only", "q", None, "c", "r", "ai")]
    with pytest.raises(FormatError, match="item 'text-only' has no image: rlaif-v rows need one"):
        write_rlaif_v_parquet(rows=rows, out_dir=tmp_path / "out", snapshot_hash="s", image_root=image_root)


def test_importing_keeps_the_release_fields_in_the_item_meta(tmp_path):
    """A release row's ds_name, origin_dataset, origin_split, idx and image_path go to the item's meta."""
    row = {"ds_name": "RLAIF-V", "question": "q", "chosen": "c", "rejected": "r", "origin_dataset": "OKVQA",
           "origin_split": '{"a": 1}', "idx": "OKVQA_1", "image_path": "ok/1.jpg"}  # fmt: skip
    (record,) = read_rlaif_v_parquet(write_table(tmp_path / "r.parquet", [row]))
    assert record.meta == {key: row[key] for key in ("ds_name", "origin_dataset", "origin_split", "idx", "image_path")}


def write_table(path, rows, schema=None):
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)
    return path


def test_a_null_answer_names_its_row_and_column(tmp_path):
    """A row without a rejected answer fails with its row number and the column."""
    rows = [
        {"question": "q", "chosen": "c", "rejected": "r", "idx": "1"},
        {"question": "q", "chosen": "c", "rejected": None, "idx": "2"},
    ]
    with pytest.raises(FormatError) as caught:
        list(read_rlaif_v_parquet(write_table(tmp_path / "bad.parquet", rows)))
    assert (caught.value.line, caught.value.field) == (2, "rejected")


def test_a_missing_column_is_named(tmp_path):
    """A file without the `chosen` column fails naming it, before any row is read."""
    path = write_table(tmp_path / "bad.parquet", [{"question": "q", "rejected": "r"}])
    with pytest.raises(FormatError, match="missing column") as caught:
        list(read_rlaif_v_parquet(path))
    assert caught.value.field == "chosen"


def test_a_wrongly_typed_column_is_named(tmp_path):
    """A numeric `question` column is refused on its first row."""
    path = write_table(tmp_path / "bad.parquet", [{"question": 5, "chosen": "c", "rejected": "r"}])
    with pytest.raises(FormatError, match="must be a string") as caught:
        list(read_rlaif_v_parquet(path))
    assert (caught.value.line, caught.value.field) == (1, "question")


def test_a_file_that_is_not_parquet_is_refused(tmp_path):
    """Bytes that are not Parquet give a FormatError, not a pyarrow exception."""
    path = tmp_path / "fake.parquet"
    path.write_text("question,chosen,rejected\n", encoding="utf-8")
    with pytest.raises(FormatError, match="Parquet"):
        list(read_rlaif_v_parquet(path))


def test_duplicate_idx_is_refused(tmp_path):
    """Two rows with the same idx would be the same item twice: the second is refused."""
    rows = [{"question": "q", "chosen": "c", "rejected": "r", "idx": "7"}] * 2
    with pytest.raises(FormatError) as caught:
        list(read_rlaif_v_parquet(write_table(tmp_path / "dup.parquet", rows)))
    assert (caught.value.line, caught.value.field) == (2, "idx")
