"""Caption-contest imports as the archive publishes them: rows that cannot be captions skipped and reported
(or refused with `--strict`), disagreeing scores counted, and tables without level counts imported,
paired and exported from their mean, precision and votes.

The rows are copied verbatim from nextml/caption-contest-data (`contests/summaries/_raw-dashboards/`)."""

# ruff: noqa: E501

import csv
import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from annotation import services
from annotation.models import Item, PreferencePair, Response
from annotation.pair_rules import RATING_SUMMARY_KEY

pytestmark = [pytest.mark.django_db]

# `_raw-dashboards/691_summary_KLUCB.csv`: its first rows, and line 2709, an empty caption with 80 votes.
CONTEST_691 = (
    "target_id,score,precision,count,rank,caption,funny,unfunny,somewhat_funny,contest\n"
    '2528,2.1300832155754437,0.00645940571590061,12738,1,"Should I check, “exceeded expectations?”",4321,2664,5753,691\n'
    "2611,2.0512935278847015,0.007213905494717194,11171,2,Let’s just give him the damn cheese.,3548,2978,4645,691\n"
    "64,1.1375,0.04619629964906088,80,2675,,2,71,7,691\n"
)
# `_raw-dashboards/587_summary_KLUCB.csv` (no level counts): its first three rows and its last two.
CONTEST_587 = (
    ",target_id,mean,precision,count,score,caption,contest\n"
    "0,1961,1.999482669425763,0.01735628102108375,1933,1.999482669425763,I see myself in so much of his work.,587\n"
    "1,5764,1.9762057877813506,0.020606692510299337,1555,1.9762057877813506,I was young and needed the money.,587\n"
    "2,5900,1.930921052631579,0.018396179832901868,1824,1.930921052631579,It's a forgery. The original is only a half-mile from where I live.,587\n"
    "6012,5966,1.0,0.036369648372665396,28,1.0,I felt great caution in my first painting attempts.,587\n"
    "6013,6005,1.0,0.03509312031717982,29,1.0,That was taken just before the 18-wheeler barreled onto the scene. Very sad.,587\n"
)


@pytest.fixture
def contest_project(researcher):
    return services.project_create(slug="contest", kind="rating", created_by=researcher)


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_the_cli_reports_the_skipped_rows_and_strict_refuses_them(contest_project, tmp_path):
    """The empty caption is left out and named by its line in the result line; `--strict` fails the whole
    import on it and stores nothing."""
    path = write(tmp_path / "691_summary_KLUCB.csv", CONTEST_691)
    with pytest.raises(CommandError, match="line 4, field 'caption': empty caption"):
        call_command("import_items", str(path), "--project", "contest", "--format", "caption-contest", "--strict")
    assert not Item.objects.exists()
    out, err = io.StringIO(), io.StringIO()
    call_command(
        "import_items", str(path), "--project", "contest", "--format", "caption-contest", stdout=out, stderr=err
    )
    assert (
        "; rows skipped as they cannot be captions: 1 (empty caption on line 4; --strict refuses them)"
        in out.getvalue()
    )
    # 2611's score 2.05129 lags its counts' mean 22912/11171 = 2.05102; 2528's is its counts' mean.
    assert "disagrees with their level counts: 1 (both kept)" in out.getvalue()
    assert "first on line 3" in err.getvalue()
    assert sorted(Response.objects.values_list("text", flat=True)) == [
        "Let’s just give him the damn cheese.",
        "Should I check, “exceeded expectations?”",
    ]


def test_the_report_lists_skipped_rows_and_counts_disagreeing_scores(contest_project, tmp_path):
    """The import's report (the API's answer and the job's result and log) lists every skipped row and counts
    the captions whose own score disagrees with their counts (here line 2: score 1.7687, counts' mean 1.7483)."""
    path = write(
        tmp_path / "649_summary_KLUCB.csv",
        ",caption,count,funny,precision,rank,score,somewhat_funny,target_id,unfunny,contest\n"
        "0,\"I'll tell you one thing - if a train ever does stop here, I'm getting on.\",147,37,0.06830620266705154,1,1.7687074829931972,36,1629,74,649\n"
        "1,\"I said, 'Not in my backyard,' and they said, 'Ok, have it your way.\",159,31,0.06015869434621958,2,1.7610062893081762,59,7446,69,649\n"
        "2,,0,0,,3,,0,9999,0,649\n",
    )
    report = services.items_import(project=contest_project, path=path, import_format="caption-contest")
    result = report.as_dict()
    assert result["skipped_rows"] == [{"line": 4, "field": "caption", "reason": "empty caption"}]
    assert result["disagreeing_rows"] == 1
    assert any("disagrees with their level counts: 1 (first on line 2)" in w for w in result["warnings"])
    stored = Response.objects.get(text__startswith="I'll tell you")
    assert stored.meta["score"] == 1.7687074829931972
    assert stored.meta["rating_counts"] == {"unfunny": 74, "somewhat funny": 36, "funny": 37}


def test_a_table_without_level_counts_imports_pairs_and_exports(contest_project, tmp_path):
    """Contest 587 has only mean, precision and count: the captions keep them, pairs follow the margin test
    on them, and a ratings snapshot exports them again with their own target ids."""
    path = write(tmp_path / "587_summary_KLUCB.csv", CONTEST_587)
    report = services.items_import(project=contest_project, path=path, import_format="caption-contest")
    assert report.created == 1 and report.pairs > 0
    stored = Response.objects.get(text="I see myself in so much of his work.")
    assert stored.meta[RATING_SUMMARY_KEY] == {
        "mean": 1.999482669425763,
        "precision": 0.01735628102108375,
        "votes": 1933,
    }
    assert "rating_counts" not in stored.meta
    # The top half (three captions, means 1.93–2.0) each beat the two at 1.0; among themselves no gap passes.
    pairs = {(p.chosen_text[:6], p.rejected_text[:6]) for p in PreferencePair.objects.filter(project=contest_project)}
    assert pairs == {
        (chosen, rejected) for chosen in ("I see ", "I was ", "It's a") for rejected in ("I felt", "That w")
    }
    assert report.pairs == 6
    again = services.items_import(project=contest_project, path=path, import_format="caption-contest")
    assert (again.created, again.unchanged) == (0, 1)

    snapshot = services.snapshot_create(
        project=contest_project, created_by=None, snapshot_filter=services.SnapshotFilter(kind="ratings")
    )
    out = services.snapshot_export(snapshot=snapshot, export_format="caption-contest-csv", out=tmp_path / "out")
    (table,) = out.glob("*.csv")
    with open(table, encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["target_id"], r["funny"], r["count"], r["score"]) for r in rows[:2]] == [
        ("1961", "", "1933", "1.999482669425763"),
        ("5764", "", "1555", "1.9762057877813506"),
    ]
