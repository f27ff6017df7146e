"""Imports of every format family into projects: the real caption-contest tables, RLHF-V, RLAIF-V and Label
Studio files with their annotations, and clean failures that store nothing."""

import csv
import io
import json
import math
from collections import Counter
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from PIL import Image

from annotation import services
from annotation.formats import (
    CorrectionRecord,
    ItemRecord,
    PairwiseRecord,
    RankingRecord,
    RatingRecord,
    ResponseRecord,
)
from annotation.formats.caption_contest import read_caption_contest_csv
from annotation.formats.label_studio import write_label_studio_json
from annotation.models import Correction, Item, PairwiseJudgment, PreferencePair, Ranking, Rating, Response
from annotation.selectors import snapshot_rows
from loupe.errors import ApplicationError
from tests.conftest import SHARED_DATA

pytestmark = [pytest.mark.django_db, pytest.mark.production_path]

CONTESTS = SHARED_DATA / "caption-contest"
REAL_FILES = sorted(CONTESTS.glob("*_summary_KLUCB.first2000.csv"))


def csv_counts(path: Path) -> dict[str, tuple[int, int, int]]:
    with open(path, encoding="utf-8", newline="") as handle:
        return {
            row["caption"]: (int(float(row["unfunny"])), int(float(row["somewhat_funny"])), int(float(row["funny"])))
            for row in csv.DictReader(handle)
        }


@pytest.fixture
def cartoon(tmp_path) -> Path:
    path = tmp_path / "cartoon.png"
    image = Image.new("RGB", (64, 48), "white")
    image.putpixel((3, 4), (0, 0, 0))
    image.save(path)
    return path


@pytest.fixture
def rating_project(researcher):
    return services.project_create(slug="contest", kind="rating", created_by=researcher)


@pytest.fixture
def correction_project(researcher):
    # RLHF-V records (one answer and its correction) import into correction projects only.
    return services.project_create(slug="rlhf", kind="correction", created_by=researcher)


def _stored_counts(project) -> dict[str, tuple[int, int, int]]:
    out = {}
    for response in Response.objects.filter(item__project=project):
        counts = response.meta["rating_counts"]
        out[response.text] = (counts["unfunny"], counts["somewhat funny"], counts["funny"])
    return out


@pytest.mark.parametrize("path", REAL_FILES, ids=lambda p: p.name[:3])
def test_real_contest_tables_import_and_export_with_the_same_captions_and_votes(
    path, rating_project, cartoon, tmp_path, settings
):
    """Both column orders import every caption with its counts and the cartoon, and a ratings snapshot
    exports a table with the same captions and votes."""
    report = services.items_import(project=rating_project, path=path, import_format="caption-contest", image=cartoon)
    assert report.created == 1 and report.pairs > 0
    item = Item.objects.get(project=rating_project)
    assert item.external_id == path.name.split("_")[0]
    assert (Path(settings.MEDIA_ROOT) / item.image).read_bytes() == cartoon.read_bytes()
    assert _stored_counts(rating_project) == csv_counts(path)

    snapshot = services.snapshot_create(
        project=rating_project, created_by=None, snapshot_filter=services.SnapshotFilter(kind="ratings")
    )
    out = services.snapshot_export(snapshot=snapshot, export_format="caption-contest-csv", out=tmp_path / "out")
    (table,) = out.glob("*.csv")
    assert csv_counts(table) == csv_counts(path)
    (record,) = read_caption_contest_csv(table)
    assert [r.meta["rank"] for r in record.responses] == list(range(1, 2001))
    with open(path, encoding="utf-8", newline="") as handle:
        target_ids = {row["caption"]: row["target_id"] for row in csv.DictReader(handle)}
    assert {r.text: r.meta["target_id"] for r in record.responses} == target_ids


def test_contest_pairs_follow_the_humor_rule(rating_project, cartoon):
    """Each rating pair's chosen caption has a higher mean, by more than 3 combined standard errors."""
    path = REAL_FILES[0]
    services.items_import(project=rating_project, path=path, import_format="caption-contest", image=cartoon)
    stats = {}
    for caption, (n1, n2, n3) in csv_counts(path).items():
        votes = n1 + n2 + n3
        mean = (n1 + 2 * n2 + 3 * n3) / votes
        var = (n1 * (1 - mean) ** 2 + n2 * (2 - mean) ** 2 + n3 * (3 - mean) ** 2) / (votes - 1)
        stats[caption] = (mean, math.sqrt(var / votes))
    pairs = list(PreferencePair.objects.filter(project=rating_project, source="rating"))
    assert pairs
    for pair in pairs:
        (mean_c, prec_c), (mean_r, prec_r) = stats[pair.chosen_text], stats[pair.rejected_text]
        assert mean_c - mean_r > 3 * math.sqrt(prec_c**2 + prec_r**2)
        assert pair.margin == pytest.approx(mean_c - mean_r)


def test_a_contest_snapshot_records_how_varied_its_rejected_captions_are(rating_project, cartoon):
    """The platform's stored contest pairs (at most 5 per chosen caption, drawn below it) spread the rejected
    side over many captions, and the snapshot records pairs and distinct chosen/rejected captions."""
    services.items_import(project=rating_project, path=REAL_FILES[0], import_format="caption-contest", image=cartoon)
    snapshot = services.snapshot_create(project=rating_project, created_by=None)
    rows = list(snapshot_rows(snapshot=snapshot))
    chosen, rejected = Counter(row["chosen"] for row in rows), Counter(row["rejected"] for row in rows)
    assert snapshot.stats["pair_stats"] == {
        "rating": {"pairs": len(rows), "distinct_chosen": len(chosen), "distinct_rejected": len(rejected)}
    }
    assert max(chosen.values()) <= 5
    assert len(rejected) >= 0.4 * len(rows) and max(rejected.values()) <= 0.15 * len(rows)


def test_imported_pairs_of_the_same_answer_are_dropped_and_counted(
    pairwise_project, correction_project, researcher, tmp_path
):
    """RLHF-V, RLAIF-V and Label Studio records whose two answers are the same text (up to whitespace) give
    no pair; the import says how many it dropped, beside the pairs it made."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rlhf = _rlhf_v(
        tmp_path / "rlhf.json",
        [
            {"idx": 1, "question": "Q?", "chosen": "A red cup.", "rejected": " A red cup. "},
            {"idx": 2, "question": "Q?", "chosen": "Two dogs.", "rejected": "Three dogs."},
        ],
    )
    report = services.items_import(project=correction_project, path=rlhf, import_format="rlhf-v")
    assert (report.created, report.pairs, report.self_pairs_dropped) == (2, 1, 1)

    table = pa.table(
        {"idx": ["a1", "a2", "a3"], "question": ["q"] * 3, "chosen": ["Same.", "Good.", "Fine."],
         "rejected": ["Same.", "Bad.", "Fine. "]}
    )  # fmt: skip
    pq.write_table(table, tmp_path / "rlaif.parquet")
    report = services.items_import(project=pairwise_project, path=tmp_path / "rlaif.parquet", import_format="rlaif-v")
    assert (report.created, report.pairs, report.self_pairs_dropped) == (3, 1, 2)

    project = services.project_create(slug="ls-same", kind="pairwise", created_by=researcher)
    record = ItemRecord(
        "k1", "Q", responses=[ResponseRecord("A cup."), ResponseRecord("A  cup."), ResponseRecord("A plate.")],
        pairwise=[PairwiseRecord(0, 1, "a", annotator="ann1"), PairwiseRecord(0, 2, "a", annotator="ann2")],
    )  # fmt: skip
    path = _label_studio_file(tmp_path, "pairwise", record)
    report = services.items_import(project=project, path=path, import_format="label-studio")
    assert (report.annotations, report.pairs, report.self_pairs_dropped) == (2, 1, 1)
    assert not any(p.chosen_text.split() == p.rejected_text.split() for p in PreferencePair.objects.all())


def test_the_api_and_the_cli_report_dropped_self_pairs(
    correction_project, researcher, api_client_for, tmp_path, capsys
):
    """The import API's answer and the CLI's summary both give the number of pairs dropped as the same answer."""
    records = [{"idx": 1, "question": "Q", "chosen": "Same.", "rejected": "Same."}]
    upload = {"format": "rlhf-v", "file": io.BytesIO(json.dumps(records).encode())}
    upload["file"].name = "x.json"
    response = api_client_for(researcher).post("/api/v1/projects/rlhf/imports/", upload, format="multipart")
    assert response.status_code == 201, response.content
    assert response.json()["self_pairs_dropped"] == 1 and response.json()["pairs"] == 0
    records = [{"idx": 2, "question": "Q", "chosen": "Same!", "rejected": " Same! "}]
    path = _rlhf_v(tmp_path / "cli.json", records)
    call_command("import_items", str(path), "--project", "rlhf", "--format", "rlhf-v")
    assert "0 preference pairs (1 dropped as the same answer twice)" in capsys.readouterr().out


def test_contest_exports_with_float_counts_and_an_index_column_import_the_same(rating_project, cartoon, tmp_path):
    """Another contest's export style (leading index column, counts written as floats) gives the same votes."""
    source = REAL_FILES[1]
    with open(source, encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))[:50]
    variant = tmp_path / "variant.csv"
    with open(variant, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["", "caption", "funny", "somewhat_funny", "unfunny", "count", "contest"])
        for index, row in enumerate(rows):
            counts = [f"{float(row[k]):.1f}" for k in ("funny", "somewhat_funny", "unfunny")]
            writer.writerow([index, row["caption"], *counts, f"{float(row['count']):.1f}", row["contest"]])
    services.items_import(project=rating_project, path=variant, import_format="caption-contest", image=cartoon)
    expected = {r["caption"]: (int(r["unfunny"]), int(r["somewhat_funny"]), int(r["funny"])) for r in rows}
    assert _stored_counts(rating_project) == expected


def test_a_bad_contest_row_names_its_line_and_column_and_stores_nothing(rating_project, cartoon, tmp_path):
    """A count that is not a number rejects the table; no item, response or pair is stored."""
    lines = REAL_FILES[0].read_text(encoding="utf-8").splitlines()
    header = lines[0].split(",")
    row = next(csv.reader([lines[5]]))
    row[header.index("funny")] = "lots"
    broken = tmp_path / "broken.csv"
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(row)
    broken.write_text("\n".join([*lines[:5], buffer.getvalue().rstrip("\n"), *lines[6:]]) + "\n", encoding="utf-8")
    with pytest.raises(ApplicationError) as caught:
        services.items_import(project=rating_project, path=broken, import_format="caption-contest", image=cartoon)
    assert caught.value.extra == {"line": 6, "field": "funny"}
    assert not Item.objects.exists() and not PreferencePair.objects.exists()


def test_scicap_export_from_contest_ratings_matches_its_files(rating_project, cartoon, tmp_path):
    """An SFT snapshot of the ratings exports metadata.jsonl whose every file exists and whose captions carry
    their control token by the threshold."""
    services.items_import(project=rating_project, path=REAL_FILES[0], import_format="caption-contest", image=cartoon)
    snapshot = services.snapshot_create(
        project=rating_project, created_by=None, snapshot_filter=services.SnapshotFilter(kind="sft", sft_threshold=1.5)
    )
    out = services.snapshot_export(snapshot=snapshot, export_format="scicap", out=tmp_path / "scicap")
    lines = [json.loads(line) for line in (out / "metadata.jsonl").read_text().splitlines()]
    assert len(lines) == snapshot.n_rows == 2000
    for line in lines:
        assert (out / line["file_name"]).read_bytes() == cartoon.read_bytes()
    means = {c: (n1 + 2 * n2 + 3 * n3) / (n1 + n2 + n3) for c, (n1, n2, n3) in csv_counts(REAL_FILES[0]).items()}
    for line in lines:
        token, caption = line["RLHF_caption"].split(" ", 1)
        assert token == ("[GOOD]" if means[caption] >= 1.5 else "[BAD]")
    assert {line["RLHF_caption"].split(" ", 1)[0] for line in lines} == {"[GOOD]", "[BAD]"}


def _rlhf_v(path: Path, records: list) -> Path:
    path.write_text(json.dumps(records), encoding="utf-8")
    return path


def test_rlhf_v_records_become_corrections_by_an_imported_annotator(correction_project, tmp_path):
    """Each record is an item whose original answer carries a correction; the pair has the changed spans."""
    path = _rlhf_v(
        tmp_path / "rlhf.json",
        [
            {"idx": 7, "text": json.dumps({"question": "Q?", "chosen": "A blue cup.", "rejected": "A red cup."})},
            {"idx": 8, "question": "Q2?", "chosen": "Two dogs.", "rejected": "Three dogs."},
        ],
    )
    report = services.items_import(project=correction_project, path=path, import_format="rlhf-v")
    assert (report.created, report.annotations, report.pairs) == (2, 2, 2)
    correction = Correction.objects.get(item__external_id="7")
    assert correction.annotator.username == "import:anonymous" and not correction.annotator.is_active
    pair = PreferencePair.objects.get(item__external_id="7")
    assert pair.chosen_text[slice(*pair.chosen_spans[0])] == "blue"
    assert pair.rejected_text[slice(*pair.rejected_spans[0])] == "red"
    again = services.items_import(project=correction_project, path=path, import_format="rlhf-v")
    assert (again.created, again.unchanged, again.annotations) == (0, 2, 0)
    assert Correction.objects.count() == 2


def test_a_bad_rlhf_v_record_names_its_line_and_field_and_stores_nothing(correction_project, tmp_path):
    """A record without its original answer is refused; nothing of the good records before it is kept."""
    path = tmp_path / "rlhf.json"
    path.write_text(
        '[\n{"idx": 1, "question": "Q", "chosen": "a", "rejected": "b"},\n{"idx": 2, "question": "Q", "chosen": "a"}\n]'
    )
    with pytest.raises(ApplicationError) as caught:
        services.items_import(project=correction_project, path=path, import_format="rlhf-v")
    assert caught.value.extra == {"line": 3, "field": "rejected"}
    assert not Item.objects.exists() and not get_user_model().objects.filter(username__startswith="import:").exists()


def test_a_bad_rlaif_v_row_is_refused(pairwise_project, tmp_path):
    """A Parquet row with an empty chosen answer names its row and column."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({"question": ["q1", "q2"], "chosen": ["good", " "], "rejected": ["bad", "worse"]})
    pq.write_table(table, tmp_path / "rlaif.parquet")
    with pytest.raises(ApplicationError) as caught:
        services.items_import(project=pairwise_project, path=tmp_path / "rlaif.parquet", import_format="rlaif-v")
    assert caught.value.extra == {"line": 2, "field": "chosen"}
    assert not Item.objects.exists()


def _label_studio_file(tmp_path: Path, kind: str, record: ItemRecord, scale=("unfunny", "somewhat funny", "funny")):
    write_label_studio_json(rows=[record], out_dir=tmp_path / kind, snapshot_hash="test", kind=kind, scale=scale)
    return tmp_path / kind / "tasks.json"


def _responses():
    return [ResponseRecord("A cup and a red plate."), ResponseRecord("A cup."), ResponseRecord("Nothing at all.")]


def test_label_studio_rankings_ratings_and_corrections_import_with_their_annotators(researcher, tmp_path):
    """Each annotation arrives by an inactive `import:<name>` user, and the pairs follow."""
    project = services.project_create(slug="ls", kind="ranking", created_by=researcher)
    ranked = ItemRecord(
        "k1", "What is on the table?", responses=_responses(), rankings=[RankingRecord([1, 0, 2], "ann1")]
    )
    services.items_import(
        project=project, path=_label_studio_file(tmp_path, "ranking", ranked), import_format="label-studio"
    )
    (ranking,) = Ranking.objects.all()
    assert ranking.annotator.username == "import:ann1"
    texts = [Response.objects.get(pk=pk).text for pk in ranking.order]
    assert texts == ["A cup.", "A cup and a red plate.", "Nothing at all."]
    assert PreferencePair.objects.filter(source="ranking").count() == 3

    rated = ItemRecord(
        "k2", "Caption?", responses=_responses(),
        ratings=[RatingRecord(0, "funny", "ann1"), RatingRecord(1, "unfunny", "ann2")],
    )  # fmt: skip
    services.items_import(
        project=project, path=_label_studio_file(tmp_path, "rating", rated), import_format="label-studio"
    )
    assert sorted(Rating.objects.values_list("annotator__username", "level")) == [
        ("import:ann1", 2),
        ("import:ann2", 0),
    ]

    corrected = ItemRecord(
        "k3", "What is on the table?", responses=_responses(),
        corrections=[CorrectionRecord(0, "A cup and a blue plate.", [(12, 15, "blue", "attribute")], "ann1")],
    )  # fmt: skip
    services.items_import(
        project=project, path=_label_studio_file(tmp_path, "correction", corrected), import_format="label-studio"
    )
    (correction,) = Correction.objects.all()
    assert correction.segments == [{"start": 12, "end": 15, "replacement": "blue", "type": "attribute"}]
    pair = PreferencePair.objects.get(source="correction")
    assert (pair.chosen_text, pair.rejected_text) == ("A cup and a blue plate.", "A cup and a red plate.")


def test_one_person_judging_two_pairs_of_an_item_keeps_both_judgments(researcher, tmp_path):
    """Loupe holds one judgment per person and item, so the second comes in under `import:<name>~2`."""
    project = services.project_create(slug="ls", kind="pairwise", created_by=researcher)
    record = ItemRecord(
        "k1", "Q", responses=_responses(),
        pairwise=[PairwiseRecord(0, 1, "a", annotator="ann1"), PairwiseRecord(1, 2, "a", annotator="ann1")],
    )  # fmt: skip
    services.items_import(
        project=project, path=_label_studio_file(tmp_path, "pairwise", record), import_format="label-studio"
    )
    assert sorted(PairwiseJudgment.objects.values_list("annotator__username", flat=True)) == [
        "import:ann1",
        "import:ann1~2",
    ]
    assert Item.objects.get().done_count == 2
    assert PreferencePair.objects.filter(source="pairwise").count() == 2


def test_a_rating_level_off_the_project_scale_is_refused(researcher, tmp_path):
    """A rating on a level the project does not have names the annotation; nothing is stored."""
    project = services.project_create(slug="ls", kind="rating", created_by=researcher)
    record = ItemRecord("k", "Q", responses=_responses(), ratings=[RatingRecord(0, "hilarious", "ann1")])
    path = _label_studio_file(tmp_path, "rating", record, scale=("meh", "hilarious"))
    with pytest.raises(ApplicationError) as caught:
        services.items_import(project=project, path=path, import_format="label-studio")
    assert caught.value.extra["field"] == "ratings[0].level"
    assert not Item.objects.exists()


def test_the_api_imports_a_contest_table_with_its_cartoon(rating_project, researcher, api_client_for, cartoon):
    """A multipart upload with `format=caption-contest` and the cartoon as `image` imports the table."""
    upload = {"format": "caption-contest", "file": io.BytesIO(REAL_FILES[1].read_bytes()), "image": cartoon.open("rb")}
    upload["file"].name = "691.csv"
    response = api_client_for(researcher).post("/api/v1/projects/contest/imports/", upload, format="multipart")
    assert response.status_code == 201, response.content
    assert response.json()["created"] == 1 and Response.objects.count() == 2000


def test_the_api_names_the_line_of_a_bad_file(correction_project, researcher, api_client_for):
    """A bad RLHF-V upload is a 400 with the line and field."""
    upload = {"format": "rlhf-v", "file": io.BytesIO(b'[{"idx": 1, "question": "Q", "chosen": 3, "rejected": "b"}]')}
    upload["file"].name = "x.json"
    response = api_client_for(researcher).post("/api/v1/projects/rlhf/imports/", upload, format="multipart")
    assert response.status_code == 400
    assert response.json()["extra"] == {"line": 1, "field": "chosen"}


def test_the_cli_imports_a_contest_with_its_cartoon(rating_project, cartoon, capsys):
    """`import_items --format caption-contest --image cartoon.png` stores the table and derives pairs."""
    call_command(
        "import_items",
        str(REAL_FILES[0]),
        "--project",
        "contest",
        "--format",
        "caption-contest",
        "--image",
        str(cartoon),
    )
    assert "Imported 1 new items" in capsys.readouterr().out
    snapshot = services.snapshot_create(project=rating_project, created_by=None)
    assert {row["source"] for row in snapshot_rows(snapshot=snapshot)} == {"rating"}


@pytest.mark.parametrize("project_had_items", [False, True])
def test_an_id_repeated_in_a_later_batch_names_its_line(pairwise_project, tmp_path, project_had_items):
    """An external id seen again batches later (checked against the database, not a set of every id) fails
    the import at the repeat's line and stores nothing of the file."""
    if project_had_items:
        Item.objects.create(project=pairwise_project, external_id="older", prompt="Q")
    lines = [{"external_id": f"x{i}", "prompt": "Q", "responses": [{"text": "a"}, {"text": "b"}]} for i in range(7)]
    lines[5]["external_id"] = "x1"
    path = tmp_path / "items.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    with pytest.raises(ApplicationError) as caught:
        services.items_import(project=pairwise_project, path=path, batch_size=2)
    assert caught.value.extra == {"line": 6, "field": "external_id"}
    assert "appears twice" in caught.value.message
    assert list(Item.objects.values_list("external_id", flat=True)) == (["older"] if project_had_items else [])
