"""Dataset snapshots: content-hashed, filtered by source, agreement, annotators and dates, split by item."""

import datetime as dt
import json
from pathlib import Path

import pytest
from django.core.management import call_command

from annotation import services
from annotation.models import PairwiseJudgment
from annotation.selectors import snapshot_rows
from loupe.errors import ApplicationError
from tests.annotation.feedback import judge, people, project_with_items, rate, refresh, responses_of

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
    snapshot_id = int(capsys.readouterr().out.strip())
    rows = [json.loads(line) for line in Path(project.snapshots.get(pk=snapshot_id).path).read_text().splitlines()]
    assert len(rows) == 20 and {row["split"] for row in rows} == {"train"}
