"""Caption-contest tables: reading the real exports by header name, validation, and writing them back."""

# The archive's rows are copied verbatim, one per line, however long.
# ruff: noqa: E501

import csv
import math
import random

import pytest
from PIL import Image

from annotation.formats import FORMAT_READERS, FORMAT_WRITERS, FormatError, read_manifest
from annotation.formats.caption_contest import (
    SKIP_EMPTY_CAPTION,
    SKIP_NO_VOTES,
    SKIP_OFF_SCALE,
    ContestReadNotes,
    read_caption_contest_csv,
    write_caption_contest_csv,
)
from annotation.formats.convert import aggregates_from_record
from annotation.pair_rules import RATING_SUMMARY_KEY, RatingAggregate, _MarginTest, pairs_from_ratings
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
        ("caption,mean,precision\nA,2.0,0.1\n", 1, "count", "mean \\(or score\\), precision and count"),
        ("caption,funny,somewhat_funny,unfunny,mean,score\nA,1,1,1,2.0,2.5\n", 2, "score", "which is the caption's"),
        ("caption,mean,precision,count\nA,2.0,,5\n", 2, "precision", "missing"),
        ('caption,funny,somewhat_funny,unfunny,count\n"A" b,1,1,1,3\n', 2, None, "unreadable CSV"),
        (HEADER + '"Two\nlines",1,1,1,3\nBad,1,,1,2\n', 4, "somewhat_funny", "missing"),
        ("caption,funny,somewhat_funny,unfunny,contest\nA,1,1,1,5\nB,1,1,1,6\n", 3, "contest", "one cartoon"),
    ],
    ids=[
        "missing-column",
        "negative",
        "non-numeric",
        "fraction",
        "no-counts-no-summary",
        "mean-and-score-differ",
        "summary-without-precision",
        "bad-quoting-caption-not-last",
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


# ---------------------------------------------------------------------------------------------------
# The archive's header variants (nextml/caption-contest-data, contests/summaries/ and _raw-dashboards/):
# each header line and its rows are copied verbatim from the file named.


def read(tmp_path, text, **options):
    notes = ContestReadNotes()
    (record,) = read_caption_contest_csv(write(tmp_path / "t.csv", text), notes=notes, **options)
    return record, notes


def counts_of(record):
    return [(r.text, r.rating_counts) for r in record.responses]


def test_float_counts_after_an_unnamed_index_column(tmp_path):
    """`_data-munging/summaries-unformatted/531_summary_LilUCB.csv`: an unnamed index, counts as floats."""
    record, notes = read(
        tmp_path,
        ",rank,caption,score,precision,count,unfunny,somewhat_funny,funny\n"
        "0,0,Let's stay in tonight. It's a zoo out there.,2.1731551423590934,0.0215477475066474,1721.0,564.0,295.0,862.0\n"
        "1,1,Sorry I'm late. I hit every traffic light coming home.,2.1728936332443767,0.010984853852366921,5246.0,1285.0,1769.0,2192.0\n",
    )
    assert counts_of(record) == [
        ("Let's stay in tonight. It's a zoo out there.", {"unfunny": 564, "somewhat_funny": 295, "funny": 862}),
        (
            "Sorry I'm late. I hit every traffic light coming home.",
            {"unfunny": 1285, "somewhat_funny": 1769, "funny": 2192},
        ),
    ]
    assert record.responses[0].meta == {"rank": 0, "score": 2.1731551423590934, "precision": 0.0215477475066474}
    assert notes == ContestReadNotes()


def test_capitalised_unquoted_dashboard_tables_read_one_caption_per_line(tmp_path):
    """The raw `Unfunny,Somewhat funny,Funny,Caption` dashboards (`_raw-dashboards/510`, `511`, `520`)
    are not CSV: captions are written as typed, commas and stray quotes included, one per line. They come
    in verbatim; the placeholder row `0,0,0,` is skipped and listed with its line."""
    record, notes = read(
        tmp_path,
        "Unfunny,Somewhat funny,Funny,Caption\n"
        "0,0,0,\n"
        "9,1,0,Hey pal, can I interest you in a reverse mortgage?\n"
        '9,0,0,"Why do people walk all over me"?\n'
        '7,0,0,"...Then use this micro shovel for more intricate detailing of your shoveled path.. Got it?\n'
        "9,1,1,I need to work on my negotiating skills.\n",
    )
    assert counts_of(record) == [
        ("Hey pal, can I interest you in a reverse mortgage?", {"unfunny": 9, "somewhat_funny": 1, "funny": 0}),
        ('"Why do people walk all over me"?', {"unfunny": 9, "somewhat_funny": 0, "funny": 0}),
        (
            '"...Then use this micro shovel for more intricate detailing of your shoveled path.. Got it?',
            {"unfunny": 7, "somewhat_funny": 0, "funny": 0},
        ),
        ("I need to work on my negotiating skills.", {"unfunny": 9, "somewhat_funny": 1, "funny": 1}),
    ]
    assert [(row.line, row.field, row.reason) for row in notes.skipped] == [(2, "caption", SKIP_EMPTY_CAPTION)]


def test_capitalised_headers_with_score_and_precision(tmp_path):
    """`_raw-dashboards/527_summary_LilUCB.csv`: index, capitalised names, quoted captions, curly quotes."""
    record, _notes = read(
        tmp_path,
        ",Unfunny,Somewhat funny,Funny,Caption,Score,Precision\n"
        '1731,80,56,39,"Well, your profile pic doesn\'t look much like you either.",1.7657142857142858,0.05993819633405312\n'
        '456,74,38,38,"You voted ‘Leave,’ didn’t you?",1.76,0.06800447412574094\n',
    )
    assert counts_of(record)[1] == (
        "You voted ‘Leave,’ didn’t you?",
        {"unfunny": 74, "somewhat_funny": 38, "funny": 38},
    )
    assert record.responses[0].meta == {"score": 1.7657142857142858, "precision": 0.05993819633405312}


def test_tables_without_level_counts_keep_mean_precision_and_votes(tmp_path):
    """`_raw-dashboards/587_summary_KLUCB.csv` has no per-level counts, and both `mean` and `score` (equal):
    each caption keeps its mean, precision and vote count as a summary. Means off the 1–3 scale (a few
    dashboards, here `591`'s first row, its contest changed to 587) cannot be a caption's and are skipped; with `strict` they fail."""
    text = (
        ",target_id,mean,precision,count,score,caption,contest\n"
        "0,1961,1.999482669425763,0.01735628102108375,1933,1.999482669425763,I see myself in so much of his work.,587\n"
        "1,5764,1.9762057877813506,0.020606692510299337,1555,1.9762057877813506,I was young and needed the money.,587\n"
        "0,3364,4.119111293972433,0.00020574015127890674,4861,4.119111293972433,I sense there's a lot more below the surface.,587\n"
    )
    record, notes = read(tmp_path, text)
    assert record.external_id == "587"
    first = record.responses[0]
    assert first.rating_counts is None
    assert first.meta == {
        "target_id": "1961",
        RATING_SUMMARY_KEY: {"mean": 1.999482669425763, "precision": 0.01735628102108375, "votes": 1933},
    }
    assert [(row.line, row.field, row.reason) for row in notes.skipped] == [(4, "mean", SKIP_OFF_SCALE)]
    with pytest.raises(FormatError, match="off the scale") as caught:
        read(tmp_path, text, strict=True)
    assert (caught.value.line, caught.value.field) == (4, "mean")
    (a, b) = aggregates_from_record(record)
    assert (a.mean, a.votes, a.response_key) == (1.999482669425763, 1933, "1961")
    assert a.precision == pytest.approx(0.01735628102108375, rel=1e-12)


def test_empty_captions_are_skipped_with_their_line_or_fail_when_strict(tmp_path):
    """`_raw-dashboards/691_summary_KLUCB.csv` line 2709: an empty caption with 80 votes. A caption with no
    votes at all is skipped too; `strict` refuses the first such row, naming it."""
    text = (
        "target_id,score,precision,count,rank,caption,funny,unfunny,somewhat_funny,contest\n"
        '2528,2.1300832155754437,0.00645940571590061,12738,1,"Should I check, “exceeded expectations?”",4321,2664,5753,691\n'
        "64,1.1375,0.04619629964906088,80,2675,,2,71,7,691\n"
        "65,,,0,2676,A caption nobody saw,0,0,0,691\n"
    )
    record, notes = read(tmp_path, text)
    assert [r.text for r in record.responses] == ["Should I check, “exceeded expectations?”"]
    assert [row.as_dict() for row in notes.skipped] == [
        {"line": 3, "field": "caption", "reason": SKIP_EMPTY_CAPTION},
        {"line": 4, "field": "count", "reason": SKIP_NO_VOTES},
    ]
    with pytest.raises(FormatError, match="empty caption") as caught:
        read(tmp_path, text, strict=True)
    assert (caught.value.line, caught.value.field) == (3, "caption")


def test_a_files_own_score_and_count_are_kept_beside_its_level_counts(tmp_path):
    """`_raw-dashboards/649` (score 1.7687 over counts whose mean is 1.7483) and `665` (count 13815 over
    13814 level votes): the counts are the caption's ratings, the file's score and count stay in its
    metadata, and the rows are listed as disagreeing; a row that agrees is not."""
    record, notes = read(
        tmp_path,
        ",caption,count,funny,precision,rank,score,somewhat_funny,target_id,unfunny,contest\n"
        "0,\"I'll tell you one thing - if a train ever does stop here, I'm getting on.\",147,37,0.06830620266705154,1,1.7687074829931972,36,1629,74,649\n"
        "1,\"I said, 'Not in my backyard,' and they said, 'Ok, have it your way.\",159,31,0.06015869434621958,2,1.7610062893081762,59,7446,69,649\n",
    )
    first, second = record.responses
    assert first.rating_counts == {"unfunny": 74, "somewhat_funny": 36, "funny": 37}
    assert first.meta["score"] == 1.7687074829931972 and "count" not in first.meta
    assert second.meta["score"] == 1.7610062893081762
    assert notes.disagreeing == [2]
    record, notes = read(
        tmp_path,
        "caption,count,funny,precision,rank,score,somewhat_funny,target_id,unfunny,contest\n"
        "Lunch is on me.,13815,8401,0.005494423308427344,1,2.523344191096634,4233,82,1180,665\n",
    )
    (only,) = record.responses
    assert sum(only.rating_counts.values()) == 13814 and only.meta["count"] == 13815
    assert notes.disagreeing == [2]


def test_the_real_691_sample_lists_its_disagreeing_scores(tmp_path):
    """Contest 691's dashboard scores lag its counts: every listed row really disagrees, no other does."""
    path = DATA / "691_summary_KLUCB.first2000.csv"
    notes = ContestReadNotes()
    (record,) = read_caption_contest_csv(path, notes=notes)
    disagree = set()
    for line_row in _physical_rows(path):
        line, row = line_row
        counts = [int(row[k]) for k in ("unfunny", "somewhat_funny", "funny")]
        mean = (counts[0] + 2 * counts[1] + 3 * counts[2]) / sum(counts)
        if abs(float(row["score"]) - mean) > 1e-9 or int(row["count"]) != sum(counts):
            disagree.add(line)
    assert notes.disagreeing and set(notes.disagreeing) == disagree
    assert notes.skipped == [] and len(record.responses) == 2000


def _physical_rows(path):
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        end = reader.line_num
        for row in reader:
            yield end + 1, row
            end = reader.line_num


def test_a_table_of_summaries_round_trips(tmp_path):
    """Captions known only by mean, precision and votes are written with blank level cells and read back
    as the same summaries, with their own target ids."""
    record, _notes = read(
        tmp_path,
        ",target_id,mean,precision,count,score,caption,contest\n"
        "0,1961,1.999482669425763,0.01735628102108375,1933,1.999482669425763,I see myself in so much of his work.,587\n"
        "1,5764,1.9762057877813506,0.020606692510299337,1555,1.9762057877813506,I was young and needed the money.,587\n",
    )
    write_caption_contest_csv(rows=aggregates_from_record(record), out_dir=tmp_path / "out", snapshot_hash="s")
    written = tmp_path / "out" / "587.csv"
    rows = csv_rows(written)
    assert [(r["target_id"], r["funny"], r["count"]) for r in rows] == [("1961", "", "1933"), ("5764", "", "1555")]
    (again,) = read_caption_contest_csv(written)
    for before, after in zip(record.responses, again.responses, strict=True):
        given, back = before.meta[RATING_SUMMARY_KEY], after.meta[RATING_SUMMARY_KEY]
        assert (back["mean"], back["votes"]) == (given["mean"], given["votes"])
        assert back["precision"] == pytest.approx(given["precision"], rel=1e-12)
        assert after.meta["target_id"] == before.meta["target_id"]


def test_the_written_target_id_is_the_files_own_never_a_position(tmp_path):
    """A table without target ids is written with that column blank (a position would read back as the
    contest's id); one with ids keeps them."""
    record, _notes = read(tmp_path, HEADER + "A,5,1,1,7\nB,1,1,5,7\n")
    write_caption_contest_csv(rows=aggregates_from_record(record), out_dir=tmp_path / "a", snapshot_hash="s")
    assert [r["target_id"] for r in csv_rows(tmp_path / "a" / "t.csv")] == ["", ""]
    record, _notes = read(tmp_path, "target_id," + HEADER.replace("\n", ",rank\n") + "71,A,5,1,1,7,2\n9,B,1,1,5,7,1\n")
    write_caption_contest_csv(rows=aggregates_from_record(record), out_dir=tmp_path / "b", snapshot_hash="s")
    assert [r["target_id"] for r in csv_rows(tmp_path / "b" / "t.csv")] == ["71", "9"]


# ---------------------------------------------------------------------------------------------------
# Rating summaries in the pair rule


def aggregate(counts=None, **given):
    return RatingAggregate(item_key="c", prompt="p", image=None, text="t", counts=counts or {}, **given)


def summary_of(counted):
    return {"given_mean": counted.mean, "given_precision": counted.precision, "given_votes": counted.votes}


@pytest.mark.parametrize("counts", [{"unfunny": 74, "somewhat_funny": 36, "funny": 37}, {"unfunny": 3, "funny": 1}])
def test_a_summary_stands_for_its_counts_and_pools_with_more(counts):
    """A caption given as (mean, precision, votes) has the mean, standard error and votes of the counts it
    summarises; a summary of some votes plus counts of others equals the counts of all."""
    counted = aggregate(counts)
    alone = aggregate(**summary_of(counted))
    assert (alone.votes, alone.mean) == (counted.votes, counted.mean)
    assert alone.precision == pytest.approx(counted.precision, rel=1e-12)
    more = {"unfunny": 5, "somewhat_funny": 9, "funny": 2}
    pooled = aggregate(more, **summary_of(counted))
    everything = aggregate({level: counts.get(level, 0) + n for level, n in more.items()})
    assert pooled.votes == everything.votes
    assert pooled.mean == pytest.approx(everything.mean, rel=1e-12)
    assert pooled.precision == pytest.approx(everything.precision, rel=1e-12)


def test_a_summary_gets_the_standard_error_floor():
    """NEXT's floor applies to a summary too: a precision of 0 over n votes counts as 1/√(n(n − 1)); one
    vote gets half the scale's range, as counted votes do."""
    assert aggregate(given_mean=1.0, given_precision=0.0, given_votes=3).precision == pytest.approx(1 / math.sqrt(6))
    assert aggregate(given_mean=2.5, given_precision=0.3, given_votes=1).precision == 1.0
    with pytest.raises(ValueError, match="on the scale"):
        aggregate(given_mean=4.1, given_precision=0.0002, given_votes=4861)
    with pytest.raises(ValueError, match="votes"):
        aggregate(given_mean=2.0, given_precision=0.1, given_votes=0)


def test_summary_captions_pair_by_the_margin_test(tmp_path):
    """Captions without level counts pair like counted ones: mean gap above z·√(p_c² + p_r²). With z = 2
    only the first and third of these real captions pass (gap 0.0686 > 0.0506; the others' gaps are
    0.0233 and 0.0453 against 0.0538 and 0.0553)."""
    rows = [
        "0,1961,1.999482669425763,0.01735628102108375,1933,1.999482669425763,I see myself in so much of his work.,587",
        "1,5764,1.9762057877813506,0.020606692510299337,1555,1.9762057877813506,I was young and needed the money.,587",
        "2,5900,1.930921052631579,0.018396179832901868,1824,1.930921052631579,It's a forgery. The original is only a half-mile from where I live.,587",
    ]
    record, _notes = read(tmp_path, ",target_id,mean,precision,count,score,caption,contest\n" + "\n".join(rows) + "\n")
    pairs = list(pairs_from_ratings(aggregates_from_record(record), top_half_chosen=False, z=2.0))
    assert [(p.meta["chosen_response"], p.meta["rejected_response"]) for p in pairs] == [("1961", "5900")]
    assert pairs[0].margin == pytest.approx(1.999482669425763 - 1.930921052631579)


def test_the_bisected_margin_test_equals_testing_every_pair():
    """`_MarginTest.passing` gives exactly the captions the pairwise test passes, on the real 660 sample
    (600 captions) and on random means and variances with ties."""
    (record,) = read_caption_contest_csv(REAL_FILES[0])
    ranked = sorted(aggregates_from_record(record)[:600], key=lambda a: -a.mean)
    cases = [([a.mean for a in ranked], [a.precision**2 for a in ranked], 3.0)]
    rng = random.Random(1)
    means = sorted((rng.choice([1.0, 1.5, 2.0, rng.uniform(1, 3)]) for _ in range(300)), reverse=True)
    cases.append((means, [rng.choice([0.0, 0.01, rng.uniform(0, 0.2)]) for _ in means], 1.0))
    for means, variances, z in cases:
        test = _MarginTest(means, variances, z)
        for i in range(len(means)):
            every = [
                j for j in range(i + 1, len(means)) if means[i] - means[j] > z * math.sqrt(variances[i] + variances[j])
            ]
            assert test.passing(i) == every
