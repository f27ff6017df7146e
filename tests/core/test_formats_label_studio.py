"""Label Studio tasks: each project kind exports with its annotations and imports back unchanged."""

import json
import xml.etree.ElementTree as ET

import pytest
from PIL import Image

from annotation.formats import (
    FORMAT_READERS,
    FORMAT_WRITERS,
    CorrectionRecord,
    FormatError,
    ItemRecord,
    PairwiseRecord,
    RankingRecord,
    RatingRecord,
    ResponseRecord,
)
from annotation.formats.convert import (
    aggregates_from_record,
    corrections_from_record,
    pairwise_votes_from_record,
    rankings_from_record,
)
from annotation.formats.label_studio import read_label_studio_json, write_label_studio_json
from annotation.pair_rules import pairs_from_corrections, pairs_from_pairwise, pairs_from_rankings


@pytest.fixture
def image_root(tmp_path):
    root = tmp_path / "media"
    root.mkdir()
    Image.new("RGB", (9, 9), "purple").save(root / "kitchen.png")
    return root


def item(**annotations):
    return ItemRecord(
        external_id="kitchen-1",
        prompt="What is on the table?",
        image="kitchen.png",
        responses=[
            ResponseRecord("A cup and a red plate.", "model-a"),
            ResponseRecord("A cup.", "model-b"),
            ResponseRecord("Nothing at all.", "model-c"),
        ],
        meta={"split": "train"},
        **annotations,
    )


ITEMS = {
    "pairwise": item(
        pairwise=[
            PairwiseRecord(0, 1, "a", 2.0, "more complete", "ann1"),
            PairwiseRecord(0, 1, "tie", 1.0, "", "ann2"),
            PairwiseRecord(1, 2, "both_bad", 1.0, "", "ann1"),
            PairwiseRecord(1, 2, "b", 1.0, "", "ann3"),
        ]
    ),
    "rating": item(
        ratings=[
            RatingRecord(0, "funny", "ann1"),
            RatingRecord(0, "unfunny", "ann2"),
            RatingRecord(2, "somewhat_funny", "ann1"),
        ]
    ),
    "correction": item(
        corrections=[
            CorrectionRecord(0, "A cup and a blue plate.", [(12, 15, "blue", "attribute")], "ann1"),
            CorrectionRecord(2, "A cup.", [(0, 15, "A cup.", "object")], "ann2"),
        ]
    ),
    "ranking": item(rankings=[RankingRecord([1, 0, 2], "ann1"), RankingRecord([0, 1, 2], "ann2")]),
}


@pytest.mark.parametrize("kind", list(ITEMS))
def test_export_then_import_gives_the_same_item_and_annotations(kind, image_root, tmp_path):
    """Export → import returns the item with the same responses and annotations, for every kind."""
    written = ITEMS[kind]
    manifest = FORMAT_WRITERS["label-studio-json"](
        rows=[written], out_dir=tmp_path / "ls", snapshot_hash="s", kind=kind, image_root=image_root
    )
    (back,) = FORMAT_READERS["label-studio"](tmp_path / "ls" / "tasks.json")
    assert back.image.startswith("images/") and (tmp_path / "ls" / back.image).is_file()
    back.image = written.image
    assert back == written
    assert manifest["kind"] == kind
    assert manifest["counts"]["annotations"] == sum(
        len(getattr(written, name)) for name in ("pairwise", "ratings", "corrections", "rankings")
    )


def test_round_trip_gives_the_same_pairs(image_root, tmp_path):
    """Pairs built from the imported annotations equal those built from the exported ones."""
    for kind, build in (
        ("pairwise", lambda r: pairs_from_pairwise(pairwise_votes_from_record(r))),
        ("correction", lambda r: pairs_from_corrections(corrections_from_record(r))),
        ("ranking", lambda r: pairs_from_rankings(rankings_from_record(r))),
    ):
        write_label_studio_json(
            rows=[ITEMS[kind]], out_dir=tmp_path / kind, snapshot_hash="s", kind=kind, image_root=image_root
        )
        (back,) = read_label_studio_json(tmp_path / kind / "tasks.json")
        back.image = ITEMS[kind].image
        assert list(build(back)) == list(build(ITEMS[kind]))
        assert list(build(back)), f"{kind} gives pairs"


def test_ratings_come_back_as_counts_per_level(image_root, tmp_path):
    """Individual ratings imported from Label Studio add up to counts per caption."""
    write_label_studio_json(
        rows=[ITEMS["rating"]], out_dir=tmp_path / "ls", snapshot_hash="s", kind="rating", image_root=image_root
    )
    (back,) = read_label_studio_json(tmp_path / "ls" / "tasks.json")
    assert [(a.text, a.counts) for a in aggregates_from_record(back)] == [
        ("A cup and a red plate.", {"unfunny": 1, "funny": 1}),
        ("Nothing at all.", {"somewhat_funny": 1}),
    ]


def test_pairwise_tasks_use_label_studio_pairwise_results(image_root, tmp_path):
    """A judgment for A is Label Studio's `{"selected": "left"}` on a task showing A as text1."""
    write_label_studio_json(
        rows=[ITEMS["pairwise"]], out_dir=tmp_path / "ls", snapshot_hash="s", kind="pairwise", image_root=image_root
    )
    tasks = json.loads((tmp_path / "ls" / "tasks.json").read_text("utf-8"))
    assert len(tasks) == 2
    first = tasks[0]
    assert (first["data"]["text1"], first["data"]["text2"]) == ("A cup and a red plate.", "A cup.")
    result = first["annotations"][0]["result"][0]
    assert (result["type"], result["value"]) == ("pairwise", {"selected": "left"})


@pytest.mark.parametrize("kind", list(ITEMS))
def test_label_config_is_xml_naming_the_fields_the_tasks_use(kind, image_root, tmp_path):
    """The written labeling config parses as XML and refers to the task fields."""
    write_label_studio_json(
        rows=[ITEMS[kind]], out_dir=tmp_path / "ls", snapshot_hash="s", kind=kind, image_root=image_root
    )
    root = ET.fromstring((tmp_path / "ls" / "label_config.xml").read_text("utf-8"))  # noqa: S314 - our own file
    values = {element.get("value") for element in root.iter() if element.get("value", "").startswith("$")}
    data = json.loads((tmp_path / "ls" / "tasks.json").read_text("utf-8"))[0]["data"]
    assert values and all(value[1:] in data for value in values)


def test_unannotated_items_become_tasks_to_annotate(tmp_path):
    """An item without judgments gives one pairwise task per pair of its responses, with no annotations."""
    plain = item()
    plain.image = None
    manifest = write_label_studio_json(rows=[plain], out_dir=tmp_path / "ls", snapshot_hash="s", kind="pairwise")
    tasks = json.loads((tmp_path / "ls" / "tasks.json").read_text("utf-8"))
    assert len(tasks) == 3 and all(task["annotations"] == [] for task in tasks)
    assert manifest["counts"]["tasks"] == 3
    assert "<Image" not in (tmp_path / "ls" / "label_config.xml").read_text("utf-8"), "text-only items show no image"


def test_label_studio_star_ratings_and_user_ids_are_read(tmp_path):
    """A native Label Studio `Rating` result is read as that level of the scale; `completed_by` names
    the annotator when Loupe's own field is absent; cancelled annotations are skipped."""
    task = {
        "id": 17,
        "data": {"text": "A caption", "prompt": "p"},
        "annotations": [
            {
                "completed_by": 4,
                "result": [{"from_name": "r", "to_name": "text", "type": "rating", "value": {"rating": 3}}],
            },
            {"was_cancelled": True, "result": [{"type": "rating", "value": {"rating": 1}}]},
        ],
    }
    path = tmp_path / "tasks.json"
    path.write_text(json.dumps([task]), encoding="utf-8")
    (record,) = read_label_studio_json(path)
    assert record.external_id == "17"
    assert record.ratings == [RatingRecord(0, "funny", "4")]


def bad_file(tmp_path, tasks):
    path = tmp_path / "tasks.json"
    path.write_text("[\n" + ",\n".join(json.dumps(t) for t in tasks) + "\n]\n", encoding="utf-8")
    return path


GOOD_TASK = {"data": {"external_id": "x", "text1": "one", "text2": "two"}, "annotations": []}


@pytest.mark.parametrize(
    ("task", "field", "message"),
    [
        ({"annotations": []}, "data", "missing"),
        ({"data": {"external_id": "y", "text1": "one"}}, "data.text2", "missing"),
        ({"data": {"external_id": "y", "text": 5}}, "data.text", "must be a string"),
        (
            {
                "data": {"external_id": "y", "text1": "a", "text2": "b"},
                "annotations": [{"result": [{"type": "pairwise", "value": {"selected": "up"}}]}],
            },
            "annotations[0].result[0].value.selected",
            "left",
        ),
        (
            {
                "data": {"external_id": "y", "text": "abc"},
                "annotations": [{"result": [{"type": "labels", "value": {"start": 1, "end": 9, "labels": ["x"]}}]}],
            },
            "annotations[0].result[0].value",
            "outside the text",
        ),
        (
            {
                "data": {"external_id": "y", "items": [{"id": "a", "body": "A"}]},
                "annotations": [{"result": [{"type": "ranker", "value": {"ranker": {"items": ["a", "zz"]}}}]}],
            },
            "annotations[0].result[0].value.ranker",
            "unknown item ids",
        ),
    ],
    ids=["no-data", "half-a-pair", "wrong-type", "bad-selection", "span-outside", "unknown-rank-id"],
)
def test_bad_tasks_name_line_and_field(tmp_path, task, field, message):
    """A bad task (the second in the file, starting on line 3) names its line and field."""
    with pytest.raises(FormatError, match=message) as caught:
        list(read_label_studio_json(bad_file(tmp_path, [GOOD_TASK, task])))
    assert (caught.value.line, caught.value.field) == (3, field)


def test_broken_json_names_the_line(tmp_path):
    """Broken JSON in the task array names the line of the break."""
    path = tmp_path / "tasks.json"
    path.write_text('[\n{"data": {"text": "a"}},\n{"data": {"text": "b"}\n]\n', encoding="utf-8")
    with pytest.raises(FormatError, match="invalid JSON") as caught:
        list(read_label_studio_json(path))
    assert caught.value.line == 4
