"""TRL-style exports: preference JSONL/Parquet, dense pairs with spans, reward and SFT rows, manifests."""

import json
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pyarrow.parquet as pq
import pytest
from PIL import Image

from annotation.formats import FORMAT_WRITERS, FormatError, read_manifest, read_pair_rows_jsonl
from annotation.formats.common import file_sha256
from annotation.formats.trl import (
    write_dense_jsonl,
    write_reward_jsonl,
    write_sft_jsonl,
    write_trl_jsonl,
    write_trl_parquet,
)
from annotation.pair_rules import (
    CorrectionInput,
    RankingInput,
    RatingAggregate,
    pairs_from_corrections,
    pairs_from_rankings,
    sft_rows_from_ratings,
)
from tests.core.reference_loaders import trl_vision_collate


@pytest.fixture
def image_root(tmp_path):
    root = tmp_path / "media"
    root.mkdir()
    Image.new("RGB", (16, 12), "red").save(root / "red.png")
    Image.new("RGB", (10, 10), "blue").save(root / "blue.png")
    return root


@pytest.fixture
def pairs():
    corrections = [
        CorrectionInput("i1", "Describe the image.", "red.png", "A red square and a cat.", "A red square.", []),
        CorrectionInput("i2", "What is shown?", "blue.png", "Two blue circles.", "One blue circle.", []),
    ]
    ranking = RankingInput("i3", "Rank these.", "red.png", ["best", "middle", "worst"])
    return list(pairs_from_corrections(corrections)) + list(pairs_from_rankings([ranking]))


def read_jsonl(path):
    return [json.loads(line) for line in Path(path).read_text("utf-8").splitlines()]


def test_trl_jsonl_has_prompt_chosen_rejected_and_copied_images(pairs, image_root, tmp_path):
    """Each line is one pair in TRL's standard form; its image is copied once and referred to by path."""
    manifest = write_trl_jsonl(rows=pairs, out_dir=tmp_path / "out", snapshot_hash="abc", image_root=image_root)
    records = read_jsonl(tmp_path / "out" / "pairs.jsonl")
    assert [(r["prompt"], r["chosen"], r["rejected"]) for r in records] == [
        (p.prompt, p.chosen, p.rejected) for p in pairs
    ]
    for record, pair in zip(records, pairs, strict=True):
        (image,) = record["images"]
        assert (tmp_path / "out" / image).read_bytes() == (image_root / pair.image).read_bytes()
    assert len(list((tmp_path / "out" / "images").iterdir())) == 2
    assert manifest["counts"] == {"rows": 5, "images": 2, "by_source": {"correction": 2, "ranking": 3}}
    assert manifest == read_manifest(tmp_path / "out")
    assert manifest["format"] == "trl-jsonl" and manifest["format_version"] == 1
    assert manifest["snapshot_hash"] == "abc"
    for entry in manifest["files"]:
        assert file_sha256(tmp_path / "out" / entry["path"]) == entry["sha256"]


def test_conversational_form_puts_an_image_part_before_the_prompt(pairs, image_root, tmp_path):
    """With `conversational=True`, the prompt is a user message with an image part and the answers are
    assistant messages."""
    write_trl_jsonl(
        rows=pairs[:1], out_dir=tmp_path / "out", snapshot_hash="s", image_root=image_root, conversational=True
    )
    (record,) = read_jsonl(tmp_path / "out" / "pairs.jsonl")
    assert record["prompt"] == [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": pairs[0].prompt}]}
    ]
    assert record["chosen"] == [{"role": "assistant", "content": [{"type": "text", "text": pairs[0].chosen}]}]


def test_dense_jsonl_round_trips_every_pair_field_with_spans(pairs, image_root, tmp_path):
    """Dense pairs read back equal the written pairs, changed spans included (the image path now
    points into the export)."""
    write_dense_jsonl(rows=pairs, out_dir=tmp_path / "out", snapshot_hash="s", image_root=image_root)
    back = list(read_pair_rows_jsonl(tmp_path / "out" / "pairs.jsonl"))
    assert len(back) == len(pairs)
    for read, written in zip(back, pairs, strict=True):
        assert read.image.startswith("images/")
        read.image = written.image
        assert read == written
    assert back[0].chosen_spans == [] and back[0].rejected_spans  # a deletion marks only the original


def test_trl_jsonl_accepts_row_dicts(image_root, tmp_path):
    """Writers take plain dicts with the pair fields as well as PairRow objects."""
    rows = [{"item_key": "k", "prompt": "p", "image": None, "chosen": "c", "rejected": "r", "source": "ai"}]
    manifest = FORMAT_WRITERS["trl-jsonl"](rows=iter(rows), out_dir=tmp_path / "o", snapshot_hash="s")
    assert read_jsonl(tmp_path / "o" / "pairs.jsonl") == [{"prompt": "p", "chosen": "c", "rejected": "r"}]
    assert manifest["counts"]["rows"] == 1


def test_trl_parquet_rows_and_fields_equal_the_pairs_and_images_decode(pairs, image_root, tmp_path):
    """The Parquet file holds the same pairs in small batches; `datasets` decodes its images."""
    write_trl_parquet(
        rows=pairs,
        out_dir=tmp_path / "out",
        snapshot_hash="s",
        image_root=image_root,
        batch_rows=2,
        conversational=False,
    )
    parquet = pq.ParquetFile(tmp_path / "out" / "pairs.parquet")
    assert parquet.metadata.num_rows == len(pairs)
    assert parquet.metadata.num_row_groups == 3
    table = parquet.read().to_pylist()
    assert [(r["prompt"], r["chosen"], r["rejected"]) for r in table] == [
        (p.prompt, p.chosen, p.rejected) for p in pairs
    ]
    assert table[0]["images"][0]["bytes"] == (image_root / "red.png").read_bytes()

    import datasets

    dataset = datasets.load_dataset(
        "parquet", data_files=str(tmp_path / "out" / "pairs.parquet"), split="train", cache_dir=str(tmp_path / "cache")
    )
    assert dataset[1]["images"][0].size == (10, 10)


def test_pairs_with_images_export_conversational_by_default_in_one_layout(pairs, image_root, tmp_path):
    """With images the default is the conversational form, every row's content typed parts (Arrow needs one
    column type), the image part only where the row has an image; text-only pairs stay plain strings."""
    text_only = {"item_key": "t", "prompt": "p", "image": None, "chosen": "c", "rejected": "r", "source": "ai"}
    manifest = write_trl_parquet(
        rows=[pairs[0], text_only], out_dir=tmp_path / "o", snapshot_hash="s", image_root=image_root
    )
    first, second = pq.read_table(tmp_path / "o" / "pairs.parquet").to_pylist()
    assert manifest["conversational"] is True
    assert [part["type"] for part in first["prompt"][0]["content"]] == ["image", "text"]
    assert second["prompt"] == [{"role": "user", "content": [{"type": "text", "text": "p"}]}]
    assert (len(first["images"]), second["images"]) == (1, [])
    write_trl_parquet(rows=[text_only], out_dir=tmp_path / "text", snapshot_hash="s")
    assert pq.read_table(tmp_path / "text" / "pairs.parquet").to_pylist() == [
        {"prompt": "p", "chosen": "c", "rejected": "r"}
    ]


def test_trl_vision_collator_takes_the_default_parquet_export(pairs, image_root, tiny_vlm_dir, tmp_path):
    """trl's own vision collator batches the default Parquet export as `datasets` loads it; the standard
    form is what it refuses (the processor finds no image token in the prompt)."""
    import datasets

    def rows(name, **options):
        write_trl_parquet(rows=pairs[:2], out_dir=tmp_path / name, snapshot_hash="s", image_root=image_root, **options)
        return list(
            datasets.load_dataset(
                "parquet",
                data_files=str(tmp_path / name / "pairs.parquet"),
                split="train",
                cache_dir=str(tmp_path / "c"),
            )
        )

    batch = trl_vision_collate(rows("default"), processor_dir=tiny_vlm_dir)
    assert batch["input_ids"].shape[0] == 4 and batch["pixel_values"].shape[0] >= 2
    with pytest.raises(ValueError, match="image"):
        trl_vision_collate(rows("plain", conversational=False), processor_dir=tiny_vlm_dir)


def test_reward_rows_carry_the_margin(pairs, image_root, tmp_path):
    """Reward rows have chosen, rejected and margin (rank distance here; 0.0 where a pair has none)."""
    write_reward_jsonl(rows=pairs, out_dir=tmp_path / "out", snapshot_hash="s", image_root=image_root)
    records = read_jsonl(tmp_path / "out" / "reward.jsonl")
    assert [r["margin"] for r in records] == [0.0, 0.0, 1.0, 2.0, 1.0]
    assert all({"prompt", "chosen", "rejected", "margin", "images"} <= set(r) for r in records)


def test_sft_rows_have_prompt_and_completion(image_root, tmp_path):
    """SFT rows are prompt–completion records, the completion carrying its control token."""
    aggregates = [
        RatingAggregate("c", "Caption this.", "red.png", "funny one", {"funny": 9, "unfunny": 1}),
        RatingAggregate("c", "Caption this.", "red.png", "dull one", {"funny": 1, "unfunny": 9}),
    ]
    rows = list(sft_rows_from_ratings(aggregates, threshold=2.0))
    manifest = write_sft_jsonl(rows=rows, out_dir=tmp_path / "out", snapshot_hash="s", image_root=image_root)
    records = read_jsonl(tmp_path / "out" / "sft.jsonl")
    assert [(r["prompt"], r["completion"]) for r in records] == [
        ("Caption this.", "[GOOD] funny one"),
        ("Caption this.", "[BAD] dull one"),
    ]
    assert manifest["counts"]["by_source"] == {"bad": 1, "good": 1}


def test_a_missing_image_fails_the_export(pairs, tmp_path):
    """A pair whose image is not under image_root fails loudly instead of writing a broken reference."""
    with pytest.raises(FileNotFoundError):
        write_trl_jsonl(rows=pairs, out_dir=tmp_path / "out", snapshot_hash="s", image_root=tmp_path)


@pytest.mark.parametrize(
    ("line_text", "field", "message"),
    [
        ('{"prompt": "p", "chosen": "c"', None, "invalid JSON"),
        ('{"prompt": "p", "chosen": "c"}', "rejected", "missing"),
        ('{"prompt": "p", "chosen": 3, "rejected": "r"}', "chosen", "must be a string"),
        ('{"prompt": "p", "chosen": "c", "rejected": "r", "chosen_spans": [[5, 2]]}', "chosen_spans", "span"),
    ],
)
def test_reading_a_bad_pair_line_names_line_and_field(tmp_path, line_text, field, message):
    """A bad line in a pairs file names its line number (blank lines counted) and field."""
    good = '{"prompt": "p", "chosen": "c", "rejected": "r"}'
    path = tmp_path / "pairs.jsonl"
    path.write_text(f"{good}\n\n{line_text}\n", encoding="utf-8")
    with pytest.raises(FormatError, match=message) as caught:
        list(read_pair_rows_jsonl(path))
    assert (caught.value.line, caught.value.field) == (3, field)


def test_importing_the_formats_loads_no_heavy_or_django_modules():
    """The web process imports these modules: they must not pull in Django, torch, datasets or pyarrow."""
    import subprocess
    import sys

    code = (
        "import sys, annotation.pair_rules, annotation.formats\n"
        "heavy = {'django', 'torch', 'transformers', 'trl', 'datasets', 'pyarrow'}\n"
        "print(sorted(heavy & {name.split('.')[0] for name in sys.modules}))\n"
    )
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
