"""Dataset snapshots: content-hashed, filtered by source, agreement, annotators and dates, split by item."""

import datetime as dt
import io
import json
from pathlib import Path

import pytest
from django.core.management import call_command

from annotation import services
from annotation.models import AIFeedback, PairwiseJudgment, PreferencePair
from annotation.selectors import snapshot_rows
from loupe.errors import ApplicationError
from tests.annotation.feedback import judge, people, project_with_items, rank, rate, refresh, responses_of
from tests.conftest import SHARED_DATA

pytestmark = pytest.mark.django_db


@pytest.fixture
def judged(researcher):
    """20 items, each judged by two annotators: `first` prefers response 0, `second` response 1 on odd items."""
    project = project_with_items(
        "snap", "pairwise", {f"item-{i:02d}": [f"good {i}", f"bad {i}"] for i in range(20)}, created_by=researcher
    )
    first, second = people("annotator-", 2)
    for i in range(20):
        good, bad = responses_of(project, f"item-{i:02d}")
        judge(good, bad, first, "a")
        judge(good, bad, second, "a" if i % 2 == 0 else "b")
    refresh(project)
    return project, first, second


def _rows(snapshot):
    return list(snapshot_rows(snapshot=snapshot))


def test_the_same_filter_over_the_same_data_gives_the_same_snapshot(judged):
    """Freezing twice gives one snapshot with one hash; another seed is another snapshot."""
    project, *_ = judged
    first = services.snapshot_create(project=project, created_by=None)
    again = services.snapshot_create(project=project, created_by=None)
    assert first.pk == again.pk and first.content_hash == again.content_hash
    reseeded = services.snapshot_create(
        project=project, created_by=None, snapshot_filter=services.SnapshotFilter(seed=7)
    )
    assert reseeded.content_hash != first.content_hash
    assert Path(first.path).name == f"{first.content_hash}.jsonl"


def test_the_split_is_by_item_and_no_item_is_on_both_sides(judged):
    """Every row of an item is on one side; with half held out both sides have items."""
    project, *_ = judged
    snapshot_filter = services.SnapshotFilter(test_fraction=0.5, seed=3)
    snapshot = services.snapshot_create(project=project, created_by=None, snapshot_filter=snapshot_filter)
    sides = {}
    for row in _rows(snapshot):
        sides.setdefault(row["item_key"], set()).add(row["split"])
    assert all(len(s) == 1 for s in sides.values())
    assert {next(iter(s)) for s in sides.values()} == {"train", "test"}
    assert snapshot.filters["split_by"] == "item" and snapshot.stats["split"]["by"] == "item"
    assert snapshot.n_train + snapshot.n_test == snapshot.n_rows == len(sides)


def test_min_agreement_keeps_only_unanimous_pairs(judged):
    """Split votes (agreement 1/2) tie and give no pair; unanimous items (agreement 1) pass a 0.9 floor."""
    project, *_ = judged
    snapshot_filter = services.SnapshotFilter(min_agreement=0.9)
    snapshot = services.snapshot_create(project=project, created_by=None, snapshot_filter=snapshot_filter)
    assert sorted(row["item_key"] for row in _rows(snapshot)) == [f"item-{i:02d}" for i in range(0, 20, 2)]
    assert snapshot.filters["min_agreement"] == 0.9


def test_an_annotator_filter_derives_pairs_from_that_annotators_judgments_only(judged):
    """With only `second`'s votes, odd items prefer the other response; the stored pairs are untouched."""
    project, first, second = judged
    only_second = services.SnapshotFilter(annotators=(second.username,))
    snapshot = services.snapshot_create(project=project, created_by=None, snapshot_filter=only_second)
    rows = {row["item_key"]: row for row in _rows(snapshot)}
    assert len(rows) == 20
    for i in range(20):
        row = rows[f"item-{i:02d}"]
        assert row["chosen"] == (f"good {i}" if i % 2 == 0 else f"bad {i}")
        assert row["n_votes"] == 1
    only_first = services.SnapshotFilter(annotators=(first.username,))
    chosen = {
        row["chosen"]
        for row in _rows(services.snapshot_create(project=project, created_by=None, snapshot_filter=only_first))
    }
    assert chosen == {f"good {i}" for i in range(20)}
    assert snapshot.filters["annotators"] == [second.username]


def test_a_date_range_keeps_annotations_made_in_it(judged):
    """Judgments dated before the range are left out; the rows are those of the judgments inside it."""
    project, first, second = judged
    PairwiseJudgment.objects.filter(annotator=second).update(created_at=dt.datetime(2024, 1, 10, tzinfo=dt.UTC))
    PairwiseJudgment.objects.filter(annotator=first).update(created_at=dt.datetime(2024, 3, 1, tzinfo=dt.UTC))
    january = services.SnapshotFilter(date_from="2024-01-01", date_to="2024-01-31")
    rows = _rows(services.snapshot_create(project=project, created_by=None, snapshot_filter=january))
    assert {row["chosen"] for row in rows if row["item_key"] == "item-01"} == {"bad 1"}
    with pytest.raises(ApplicationError, match="No preference pairs"):
        services.snapshot_create(
            project=project, created_by=None, snapshot_filter=services.SnapshotFilter(date_to="2023-12-31")
        )


def test_bad_filters_are_refused_with_the_field_named(judged):
    """Unknown kinds, sources, people and dates are refused before anything is written."""
    project, *_ = judged
    for kwargs, field in (
        ({"kind": "pears"}, "kind"),
        ({"sources": ("vibes",)}, "sources"),
        ({"date_from": "last tuesday"}, "date_from"),
        ({"date_from": "2024-02-01", "date_to": "2024-01-01"}, "date_from"),
        ({"split_by": "caption"}, "split_by"),
    ):
        with pytest.raises(ApplicationError) as caught:
            services.SnapshotFilter(**kwargs)
        assert caught.value.extra["field"] == field
    with pytest.raises(ApplicationError, match="No annotator named nobody"):
        services.snapshot_create(
            project=project, created_by=None, snapshot_filter=services.SnapshotFilter(annotators=("nobody",))
        )


@pytest.fixture
def rated(researcher):
    """A rating project: per item, a caption everyone finds funny and one nobody does."""
    project = project_with_items(
        "rated",
        "rating",
        {f"cartoon-{i}": ["a great caption", "a weak caption"] for i in range(4)},
        created_by=researcher,
    )
    raters = people("rater-", 8)
    for i in range(4):
        great, weak = responses_of(project, f"cartoon-{i}")
        for rater in raters[:4]:
            rate(great, rater, 2)
        for rater in raters[4:]:
            rate(weak, rater, 0)
    refresh(project)
    return project


def test_sft_snapshots_prefix_good_and_bad_by_the_threshold(rated):
    """Each rated caption becomes one SFT row, `[GOOD]` above the scale's middle and `[BAD]` below."""
    snapshot = services.snapshot_create(
        project=rated, created_by=None, snapshot_filter=services.SnapshotFilter(kind="sft")
    )
    rows = _rows(snapshot)
    assert len(rows) == 8
    assert {row["completion"] for row in rows} == {"[GOOD] a great caption", "[BAD] a weak caption"}
    for row in rows:
        assert row["label"] == ("good" if row["completion"].startswith("[GOOD]") else "bad")
    stricter = services.SnapshotFilter(kind="sft", sft_threshold=3.5)
    assert all(
        r["label"] == "bad"
        for r in _rows(services.snapshot_create(project=rated, created_by=None, snapshot_filter=stricter))
    )


def test_ratings_snapshots_carry_the_counts_per_level(rated):
    """A ratings snapshot has one row per rated caption with its counts on the project's scale."""
    snapshot = services.snapshot_create(
        project=rated, created_by=None, snapshot_filter=services.SnapshotFilter(kind="ratings")
    )
    rows = _rows(snapshot)
    assert len(rows) == 8
    by_text = {row["text"]: row["counts"] for row in rows}
    assert by_text == {"a great caption": {"funny": 4}, "a weak caption": {"unfunny": 4}}
    assert rows[0]["scale"] == ["unfunny", "somewhat funny", "funny"]


def test_the_cli_freezes_with_filters_and_prints_the_id(judged, capsys):
    """`snapshot --annotator NAME --kind pairs` prints the new snapshot's id."""
    project, _first, second = judged
    call_command("snapshot", "--project", project.slug, "--annotator", second.username, "--test-fraction", "0")
    printed = capsys.readouterr()
    snapshot_id = int(printed.out.strip())
    assert '"pairwise": {"distinct_chosen": 20, "distinct_rejected": 20, "pairs": 20}' in printed.err
    rows = [json.loads(line) for line in Path(project.snapshots.get(pk=snapshot_id).path).read_text().splitlines()]
    assert len(rows) == 20 and {row["split"] for row in rows} == {"train"}


def _rate_with_means(project, item_key, levels_per_caption):
    """Rate each response of the item with the given levels (one rater per level)."""
    raters = people(f"{item_key}-rater-", max(len(levels) for levels in levels_per_caption))
    for response, levels in zip(responses_of(project, item_key), levels_per_caption, strict=True):
        for rater, level in zip(raters, levels, strict=False):
            rate(response, rater, level)


@pytest.fixture
def mild(researcher):
    """Captions rated 1.0, 1.25, 1.5 and 1.75 on average: all below the scale's middle (2)."""
    project = project_with_items("mild", "rating", {"cartoon": ["c100", "c125", "c150", "c175"]}, created_by=researcher)
    _rate_with_means(project, "cartoon", [[0, 0, 0, 0], [0, 0, 0, 1], [0, 0, 1, 1], [0, 1, 1, 1]])
    refresh(project)
    return project


def test_sft_snapshots_split_at_the_median_rating_by_default_and_record_it(mild, researcher, api_client_for):
    """Without a threshold the split is SciCap's median (1.375 here: two `[GOOD]`, two `[BAD]`), not the scale's
    middle (which would make every caption `[BAD]`); the threshold used is recorded, fixed or median."""
    response = api_client_for(researcher).post("/api/v1/projects/mild/snapshots/", {"kind": "sft"}, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["stats"]["sft_threshold"] == {"value": 1.375, "rule": "median"}
    snapshot = mild.snapshots.get(pk=response.json()["id"])
    labels = {row["completion"].split(" ", 1)[1]: row["label"] for row in _rows(snapshot)}
    assert labels == {"c100": "bad", "c125": "bad", "c150": "good", "c175": "good"}
    fixed = services.snapshot_create(
        project=mild, created_by=None, snapshot_filter=services.SnapshotFilter(kind="sft", sft_threshold=2.0)
    )
    assert fixed.stats["sft_threshold"] == {"value": 2.0, "rule": "fixed"}
    assert {row["label"] for row in _rows(fixed)} == {"bad"}


def test_the_median_is_taken_over_the_responses_the_snapshot_holds(mild):
    """With only one rater's ratings (a 0 on three captions, a 1 on one) the median is that rater's, 1.0."""
    first_rater = "cartoon-rater-0"
    only_first = services.SnapshotFilter(kind="sft", annotators=(first_rater,))
    snapshot = services.snapshot_create(project=mild, created_by=None, snapshot_filter=only_first)
    assert snapshot.stats["sft_threshold"] == {"value": 1.0, "rule": "median"}


def test_pair_snapshots_count_pairs_and_distinct_answers_per_source(researcher):
    """Two items ranked a > b > c give 6 ranking pairs with 4 distinct chosen and 4 distinct rejected answers
    (an answer counts once per item, even where two items share the words); a pairwise item adds its own."""
    project = project_with_items(
        "mixed", "ranking", {"i1": ["a", "b", "c"], "i2": ["a", "b", "c"], "i3": ["yes", "no"]}, created_by=researcher
    )
    (annotator,) = people("ranker-", 1)
    rank(responses_of(project, "i1"), annotator)
    rank(responses_of(project, "i2"), annotator)
    judge(*responses_of(project, "i3"), annotator, "a")
    refresh(project)
    for snapshot_filter in (services.SnapshotFilter(), services.SnapshotFilter(annotators=(annotator.username,))):
        snapshot = services.snapshot_create(project=project, created_by=None, snapshot_filter=snapshot_filter)
        assert snapshot.stats["pair_stats"] == {
            "ranking": {"pairs": 6, "distinct_chosen": 4, "distinct_rejected": 4},
            "pairwise": {"pairs": 1, "distinct_chosen": 1, "distinct_rejected": 1},
        }


@pytest.fixture
def ai_labelled(researcher):
    """AI pairs biased towards shorter chosen answers (10 items: 3 words beat 41), four fair ones (both long),
    and a pairwise item whose chosen answer is much shorter too."""
    long_text = " ".join(["word"] * 40)
    items = {f"short-{i}": ["a short answer", f"{long_text} {i}"] for i in range(10)}
    items |= {f"long-{i}": [f"{long_text} good {i}", f"{long_text} bad {i}"] for i in range(4)}
    items["people"] = ["ok", long_text]
    project = project_with_items("ai-snap", "pairwise", items, created_by=researcher)
    for key in items:
        if key == "people":
            continue
        better, worse = responses_of(project, key)
        AIFeedback.objects.create(response=better, labeler_model="tiny-labeler", score=0.0)
        AIFeedback.objects.create(response=worse, labeler_model="tiny-labeler", score=-3.0)
    (person,) = people("judge-", 1)
    judge(*responses_of(project, "people"), person, "a")
    refresh(project)
    return project, person


def _length_gap(rows):
    chosen = sum(len(row["chosen"].split()) for row in rows) / len(rows)
    rejected = sum(len(row["rejected"].split()) for row in rows) / len(rows)
    return abs(chosen - rejected) / rejected


@pytest.mark.parametrize("annotators", [(), ("ai:tiny-labeler", "judge-0")], ids=["stored", "derived"])
def test_ai_pairs_are_length_balanced_over_the_whole_snapshot(ai_labelled, annotators):
    """By default the snapshot's AI pairs go through RLAIF-V's length balancing together: the "shorter answer
    wins" pairs go, the fair ones stay, and other sources keep their pairs. With the flag off every AI pair
    stays and the bias with them. Both the stored pairs and pairs derived at snapshot time are balanced."""
    project, _person = ai_labelled
    balanced = services.snapshot_create(
        project=project, created_by=None, snapshot_filter=services.SnapshotFilter(annotators=annotators)
    )
    raw = services.snapshot_create(
        project=project,
        created_by=None,
        snapshot_filter=services.SnapshotFilter(annotators=annotators, balance_ai_lengths=False),
    )
    ai_raw = [row for row in _rows(raw) if row["source"] == "ai"]
    ai_balanced = [row for row in _rows(balanced) if row["source"] == "ai"]
    assert len(ai_raw) == 14 and _length_gap(ai_raw) > 0.5
    assert {row["item_key"] for row in ai_balanced} == {f"long-{i}" for i in range(4)}
    assert _length_gap(ai_balanced) < 0.05
    assert [row["chosen"] for row in _rows(balanced) if row["source"] == "pairwise"] == ["ok"]
    assert balanced.stats["ai_length_balance_ratio"] is not None and "ai_length_balance_ratio" not in raw.stats
    assert balanced.stats["pair_stats"]["ai"]["pairs"] == 4
    only_people = services.SnapshotFilter(sources=("pairwise",), annotators=annotators)
    assert "ai_length_balance_ratio" not in (
        services.snapshot_create(project=project, created_by=None, snapshot_filter=only_people).stats
    )


# ------------------------------------------------------------------------------- splits of rated items

CONTEST_660 = SHARED_DATA / "caption-contest" / "660_summary_KLUCB.first2000.csv"


@pytest.fixture
def contest(researcher):
    """The real contest 660 (2,000 captions, one cartoon): one item holding every rated caption."""
    project = services.project_create(slug="contest", kind="rating", created_by=researcher)
    services.items_import(project=project, path=CONTEST_660, import_format="caption-contest")
    return project


def test_a_rating_project_splits_by_caption_so_both_sides_hold_pairs_and_no_caption_is_on_both(contest):
    """One contest is one item, so a rating project splits by response by default: train and test both hold
    pairs, no caption is on both sides (pairs across the sides are dropped and counted), and a caption
    falls on the same side in the pairs and the ratings snapshots."""
    snapshot = services.snapshot_create(project=contest, created_by=None)
    sides: dict[str, set[str]] = {}
    for row in _rows(snapshot):
        for text in (row["chosen"], row["rejected"]):
            sides.setdefault(text, set()).add(row["split"])
    assert all(len(side) == 1 for side in sides.values())
    assert snapshot.n_train > 0 and snapshot.n_test > 0
    across = snapshot.stats["split"]["pairs_across_sides"]
    assert snapshot.stats["split"] == {
        "by": "response", "train": snapshot.n_train, "test": snapshot.n_test, "pairs_across_sides": across
    }  # fmt: skip
    assert across > 0 and snapshot.n_rows + across == PreferencePair.objects.filter(project=contest).count()
    assert "warnings" not in snapshot.stats

    ratings = services.snapshot_create(
        project=contest, created_by=None, snapshot_filter=services.SnapshotFilter(kind="ratings")
    )
    rated_side = {row["text"]: row["split"] for row in _rows(ratings)}
    assert set(rated_side.values()) == {"train", "test"} and len(rated_side) == 2000
    assert all(rated_side[text] == next(iter(side)) for text, side in sides.items())


def test_a_split_that_leaves_a_side_empty_is_kept_and_says_so(contest, researcher, api_client_for, tmp_path):
    """Split by item, the contest's one item lands on one side: the API's snapshot, the CLI and the export
    of the empty side all say so."""
    response = api_client_for(researcher).post(
        "/api/v1/projects/contest/snapshots/", {"split_by": "item", "test_fraction": 0.1}, format="json"
    )
    assert response.status_code == 201, response.content
    body = response.json()
    empty = "test" if body["n_test"] == 0 else "train"
    assert body["n_rows"] > 0 and 0 in (body["n_train"], body["n_test"])
    assert body["warnings"] == [
        f"The {empty} side of the split is empty: split by item with test_fraction 0.1, every row fell on one "
        "side (few items, each with many rows: split by response instead)."
    ]

    err = io.StringIO()
    call_command("snapshot", "--project", "contest", "--split-by", "item", stdout=io.StringIO(), stderr=err)
    assert f"warning: The {empty} side of the split is empty" in err.getvalue()

    err = io.StringIO()
    call_command(
        "export_dataset", "--snapshot", str(body["id"]), "--out", str(tmp_path / "out"), "--split", empty,
        stdout=io.StringIO(), stderr=err,
    )  # fmt: skip
    assert f"warning: snapshot {body['id']} has no {empty} rows; nothing was exported (The {empty} side" in (
        err.getvalue()
    )

    whole = api_client_for(researcher).post(
        "/api/v1/projects/contest/snapshots/", {"split_by": "item", "test_fraction": 0.0}, format="json"
    )
    assert whole.json()["warnings"] == []  # no test side was asked for
