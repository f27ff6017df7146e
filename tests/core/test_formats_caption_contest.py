"""Caption-contest tables: reading the real exports by header name, validation, and writing them back."""

import csv

import pytest
from PIL import Image

from annotation.formats import FORMAT_READERS, FORMAT_WRITERS, FormatError, read_manifest
from annotation.formats.caption_contest import read_caption_contest_csv, write_caption_contest_csv
from annotation.formats.convert import aggregates_from_record
from tests.conftest import SHARED_DATA

DATA = SHARED_DATA / "caption-contest"
REAL_FILES = sorted(DATA.glob("*_summary_KLUCB.first2000.csv"))


def csv_rows(path):
    with open(path, encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def counts_by_caption(rows):
    return {r["caption"]: (int(r["funny"]), int(r["somewhat_funny"]), int(r["unfunny"])) for r in rows}


def record_counts(record):
    return {
        r.text: (r.rating_counts["funny"], r.rating_counts["somewhat_funny"], r.rating_counts["unfunny"])
        for r in record.responses
    }


def test_the_two_real_exports_order_their_columns_differently():
    """The shared real files really differ in column order (so reading by name is what is tested)."""
    headers = []
    for path in REAL_FILES:
        with open(path, encoding="utf-8", newline="") as handle:
            headers.append(next(csv.reader(handle)))
    assert len(REAL_FILES) == 2
    assert headers[0] != headers[1]
    assert sorted(headers[0]) == sorted(headers[1])


@pytest.mark.parametrize("path", REAL_FILES, ids=lambda p: p.name[:3])
def test_real_export_reads_every_caption_with_its_counts(path):
    """Every caption of the real file comes in with its funny / somewhat funny / unfunny counts."""
    (record,) = read_caption_contest_csv(path)
    rows = csv_rows(path)
    assert record.external_id == rows[0]["contest"]
    assert len(record.responses) == len(rows) == 2000
    assert record_counts(record) == counts_by_caption(rows)
    assert any("\n" in r.text for r in record.responses), "captions with line breaks survive"
    first = record.responses[0]
    assert first.meta["rank"] == 1
    assert first.meta["target_id"] == rows[0]["target_id"]


@pytest.mark.parametrize("path", REAL_FILES, ids=lambda p: p.name[:3])
def test_real_export_round_trips_with_the_same_captions_and_counts(path, tmp_path):
    """Import → export → import keeps every caption and its vote counts; the written table is ranked by
    the mean recomputed from the counts (contest 691's dashboard scores lag its counts slightly)."""
    cartoon = tmp_path / "cartoon.png"
    Image.new("RGB", (32, 24), "white").save(cartoon)
    (record,) = read_caption_contest_csv(path, image=cartoon)
    manifest = write_caption_contest_csv(
        rows=aggregates_from_record(record), out_dir=tmp_path / "out", snapshot_hash="snap"
    )
    (entry,) = manifest["contests"]
    written = tmp_path / "out" / entry["csv"]
    assert (tmp_path / "out" / entry["image"]).read_bytes() == cartoon.read_bytes()
    (again,) = read_caption_contest_csv(written)
    assert record_counts(again) == record_counts(record) == counts_by_caption(csv_rows(path))
    assert [r.meta["rank"] for r in again.responses] == list(range(1, 2001))
    scores = [r.meta["score"] for r in again.responses]
    assert scores == sorted(scores, reverse=True)
    for response in again.responses:
        c = response.rating_counts
        votes = c["unfunny"] + c["somewhat_funny"] + c["funny"]
        mean = (c["unfunny"] + 2 * c["somewhat_funny"] + 3 * c["funny"]) / votes
        assert response.meta["score"] == pytest.approx(mean, rel=1e-12)
    assert manifest["counts"] == {"items": 1, "captions": 2000}
    assert read_manifest(tmp_path / "out")["snapshot_hash"] == "snap"


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_float_counts_and_an_extra_index_column_parse(tmp_path):
    """Counts written as floats ("12.0") and an unnamed index column, as other copies have, are read."""
    path = write(
        tmp_path / "c.csv",
        ",caption,unfunny,somewhat_funny,funny,count,mean,precision\n"
        '0,"First, with a comma",3.0,2.0,12.0,17.0,2.52,0.2\n'
        "1,Second,10,1,0,11,1.09,0.09\n",
    )
    (record,) = read_caption_contest_csv(path, external_id="c1")
    assert record.external_id == "c1"
    assert [(r.text, r.rating_counts) for r in record.responses] == [
        ("First, with a comma", {"unfunny": 3, "somewhat_funny": 2, "funny": 12}),
        ("Second", {"unfunny": 10, "somewhat_funny": 1, "funny": 0}),
    ]
    assert record.responses[0].meta["score"] == pytest.approx(2.52)


def test_the_registry_names_the_reader_and_the_writer():
    """The format registries list the caption-contest reader and writer."""
    assert FORMAT_READERS["caption-contest"] is read_caption_contest_csv
    assert FORMAT_WRITERS["caption-contest-csv"] is write_caption_contest_csv


HEADER = "caption,funny,somewhat_funny,unfunny,count\n"


@pytest.mark.parametrize(
    ("text", "line", "field", "message"),
    [
        ("caption,funny,unfunny\nA,1,2\n", 1, "somewhat_funny", "missing column"),
        (HEADER + "Fine,1,1,1,3\nBad,-1,1,1,1\n", 3, "funny", "negative"),
        (HEADER + "Fine,1,1,1,3\nBad,1,lots,1,3\n", 3, "somewhat_funny", "must be a number"),
        (HEADER + "Bad,1,1,1.5,3.5\n", 2, "unfunny", "whole number"),
        (HEADER + "Bad,1,1,1,4\n", 2, "count", "is 4"),
        (HEADER + ",1,1,1,3\n", 2, "caption", "missing"),
        (HEADER + '"Two\nlines",1,1,1,3\nBad,1,,1,2\n', 4, "somewhat_funny", "missing"),
        ("caption,funny,somewhat_funny,unfunny,contest\nA,1,1,1,5\nB,1,1,1,6\n", 3, "contest", "one cartoon"),
    ],
    ids=[
        "missing-column",
        "negative",
        "non-numeric",
        "fraction",
        "count-mismatch",
        "empty-caption",
        "multiline",
        "two-contests",
    ],
)
def test_bad_tables_name_the_line_and_column(tmp_path, text, line, field, message):
    """A bad table fails with the line (header = line 1, a quoted caption's extra lines counted) and
    the column."""
    path = write(tmp_path / "bad.csv", text)
    with pytest.raises(FormatError, match=message) as caught:
        list(read_caption_contest_csv(path))
    assert (caught.value.line, caught.value.field) == (line, field)


def test_a_missing_cartoon_image_is_an_error(tmp_path):
    """Naming a cartoon image that does not exist fails on the `image` field."""
    path = write(tmp_path / "ok.csv", HEADER + "A,1,1,1,3\n")
    with pytest.raises(FormatError) as caught:
        list(read_caption_contest_csv(path, image=tmp_path / "nope.png"))
    assert caught.value.field == "image"


def test_writer_keeps_items_apart_and_refuses_interleaved_rows(tmp_path):
    """Two items give two tables; rows of an item that come back after another item are refused."""
    (record,) = read_caption_contest_csv(write(tmp_path / "a.csv", HEADER + "A,5,1,1,7\nB,1,1,5,7\n"), external_id="x")
    (other,) = read_caption_contest_csv(write(tmp_path / "b.csv", HEADER + "C,1,1,1,3\n"), external_id="y")
    first, second = aggregates_from_record(record), aggregates_from_record(other)
    manifest = write_caption_contest_csv(rows=first + second, out_dir=tmp_path / "ok", snapshot_hash="s")
    assert [c["item_key"] for c in manifest["contests"]] == ["x", "y"]
    with pytest.raises(ValueError, match="grouped"):
        write_caption_contest_csv(rows=[first[0], second[0], first[1]], out_dir=tmp_path / "bad", snapshot_hash="s")


def test_a_row_that_is_not_utf8_names_its_line(tmp_path):
    """A table saved in another encoding fails on the line with the first bad byte."""
    path = tmp_path / "latin1.csv"
    path.write_bytes((HEADER + "Fine,1,1,1,3\nCaf\xe9 caption,1,1,1,3\n").encode("latin-1"))
    with pytest.raises(FormatError, match="UTF-8") as caught:
        list(read_caption_contest_csv(path))
    assert caught.value.line == 3
