"""Gold tasks, trust and crowd-abuse flags (issue 17), through the API: gold mixed into the queue at its rate
and never shown as such, accuracy and trust by hand, flags for a straight-liner and a too-fast annotator,
and snapshots that leave out untrusted or flagged annotators exactly as naming the trusted ones does."""

import json
import random
from pathlib import Path

import pytest

from annotation import gold_rules
from annotation.gold_rules import GivenAnswer

SLUG = "gold-pairs"


def _write_items(path: Path, *, real: int, gold: list[str]) -> Path:
    """`real` ordinary items and one gold item per entry of `gold` (its choice: a = position 0 is better)."""
    lines = []
    for index in range(real):
        lines.append({"external_id": f"r{index:03d}", "prompt": f"Describe scene {index}.", "responses": [
            {"text": f"A red cube and {index} spheres."}, {"text": f"A blue cone and {index} cubes."}]})  # fmt: skip
    for index, choice in enumerate(gold):
        lines.append({"external_id": f"g{index:03d}", "prompt": f"Describe scene {100 + index}.", "responses": [
            {"text": f"A green cube and {index} cones."}, {"text": f"A yellow sphere and {index} cubes."}],
            "gold": {"choice": choice}})  # fmt: skip
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    return path


@pytest.fixture
def project(db, researcher, tmp_path):
    from annotation import services

    project = services.project_create(slug=SLUG, kind="pairwise", created_by=researcher)
    return project


def _import(project, path):
    from annotation import services

    return services.items_import(project=project, path=path)


def _member(project, user):
    from annotation import services

    services.project_member_add(project=project, user=user)
    return user


def _gold_items():
    """item id → (gold choice, id of the response at position 0)."""
    from annotation.models import GoldAnswer

    first = _first_responses()
    return {g.item_id: (g.answer["choice"], first[g.item_id]) for g in GoldAnswer.objects.all()}


def _first_responses():
    """item id → id of its response at position 0 (the gold's "a")."""
    from annotation.models import Response

    return dict(Response.objects.filter(position=0).values_list("item_id", "pk"))


def _next(client):
    return client.post(f"/api/v1/projects/{SLUG}/tasks/next/")


def _submit(client, task, choice, *, ms=4000):
    url = f"/api/v1/projects/{SLUG}/tasks/{task['assignment_id']}/submit/"
    body = {"choice": choice, "client_request_id": f"r{task['assignment_id']}", "time_spent_ms": ms}
    answer = client.post(url, body, format="json")
    assert answer.status_code == 201, answer.content


def _right_side(task, gold):
    """The screen side ("a" left, "b" right) holding the gold's better answer."""
    choice, first_id = gold[task["item_id"]]
    left_is_first = task["responses"][0]["id"] == first_id
    return "a" if (choice == "a") == left_is_first else "b"


def _wrong_side(task, gold):
    return "b" if _right_side(task, gold) == "a" else "a"


# ------------------------------------------------------------------------------------------ the queue


def test_gold_is_mixed_in_at_the_rate_looks_like_any_task_and_never_shows_its_answer(
    project, researcher, annotator, api_client_for, tmp_path, monkeypatch
):
    from annotation.services import queue

    _import(project, _write_items(tmp_path / "items.jsonl", real=60, gold=["a", "b"] * 15))
    _member(project, annotator)
    manager = api_client_for(researcher)
    set_rate = manager.post(f"/api/v1/projects/{SLUG}/gold/", {"gold_rate": 0.25}, format="json")
    assert set_rate.status_code == 200 and set_rate.json()["gold_rate"] == 0.25
    assert len(set_rate.json()["items"]) == 30
    monkeypatch.setattr(queue, "_gold_random", random.Random(17))
    gold = _gold_items()
    client = api_client_for(annotator)
    served = []
    while (task := _next(client)).status_code == 200:
        body = task.json()
        served.append(body)
        _submit(client, body, "a")
    assert task.status_code == 204 and task["X-Queue-Reason"] == "all_done"
    gold_served = [t for t in served if t["item_id"] in gold]
    real_served = [t for t in served if t["item_id"] not in gold]
    assert len(real_served) == 60, "every ordinary task is served once"
    assert len({t["item_id"] for t in gold_served}) == len(gold_served), "never the same gold task twice"
    # At rate 0.25 the gold share of what was served is near 0.25 (seeded: 19 of 79 here; binomial sd ~0.05).
    share = len(gold_served) / len(served)
    assert 0.12 <= share <= 0.38, share
    # Gold tasks are spread through the session, not bunched at one end.
    positions = [i for i, t in enumerate(served) if t["item_id"] in gold]
    assert positions[0] < len(served) / 3 and positions[-1] > 2 * len(served) / 3
    # Indistinguishable: the same fields, the same kinds of values, and nothing of the answer.
    assert {frozenset(t) for t in served} == {frozenset(served[0])}
    assert {t["status"] for t in gold_served} == {"leased"}
    for task in gold_served:
        text = json.dumps(task)
        assert "gold" not in text and "choice" not in text
        detail = client.get(f"/api/v1/projects/{SLUG}/tasks/{task['assignment_id']}/").json()
        assert set(detail) == set(task) and "gold" not in json.dumps(detail)


def test_gold_takes_no_slot_of_the_overlap_and_an_annotator_gets_each_gold_task_once(
    project, researcher, annotator, make_user, api_client_for, tmp_path
):
    _import(project, _write_items(tmp_path / "items.jsonl", real=6, gold=["a", "b", "a"]))
    _member(project, annotator)
    second = _member(project, make_user("sam-second"))
    rate = api_client_for(researcher).post(f"/api/v1/projects/{SLUG}/gold/", {"gold_rate": 1.0}, format="json")
    assert rate.status_code == 200
    gold = _gold_items()
    seen = {}
    for user in (annotator, second):
        client = api_client_for(user)
        seen[user.username] = []
        while (task := _next(client)).status_code == 200:
            seen[user.username].append(task.json()["item_id"])
            _submit(client, task.json(), "b")
    # Overlap 1: each ordinary task once in all; every annotator gets every gold task, once, first (rate 1).
    first, then = seen["ann-annotator"], seen["sam-second"]
    assert set(first[:3]) == set(then) == set(gold) and len(then) == 3
    assert sorted(first[3:]) == sorted(set(first[3:])) and len(first[3:]) == 6 and not set(first[3:]) & set(gold)


# ------------------------------------------------------------------------------------ trust and flags


@pytest.fixture
def judged(project, researcher, make_user, api_client_for, tmp_path, monkeypatch):
    """Five gold tasks and twelve ordinary ones (r000..r011); four annotators, served gold first (rate 1):

    - good: 4 of 5 gold right; r000..r005, each time the answer at position 0; 4 s per answer;
    - bad: every gold wrong; r000..r005 like good; 4 s per answer;
    - liner: "a" every time; skips r000..r005, judges r006..r011; 4 s per answer;
    - speedy: every gold right; skips r000..r005, picks what the liner picked on r006..r011; 0.3 s per answer.

    The shown orders are drawn from a seeded generator, so the run is the same every time."""
    from annotation.models import Item
    from annotation.services import project_overlap_set, queue

    monkeypatch.setattr(queue, "_random", random.Random(3))
    monkeypatch.setattr(queue, "_gold_random", random.Random(3))
    _import(project, _write_items(tmp_path / "items.jsonl", real=12, gold=["a", "b", "b", "a", "b"]))
    project_overlap_set(project=project, overlap=4)
    manager = api_client_for(researcher)
    assert manager.post(f"/api/v1/projects/{SLUG}/gold/", {"gold_rate": 1.0}, format="json").status_code == 200
    gold = _gold_items()
    keys = dict(Item.objects.values_list("pk", "external_id"))
    first = _first_responses()
    shown_gold, liner_picked = {}, {}
    for name in ("good", "bad", "liner", "speedy"):
        user = _member(project, make_user(name))
        client = api_client_for(user)
        while (answer := _next(client)).status_code == 200:
            task = answer.json()
            left = task["responses"][0]["id"]
            if task["item_id"] in gold:
                right, wrong = _right_side(task, gold), _wrong_side(task, gold)
                graded = len(shown_gold.get(name, [])) + 1
                choice = {"good": right if graded < 5 else wrong, "bad": wrong, "liner": "a", "speedy": right}[name]
                shown_gold.setdefault(name, []).append(choice == right)
            elif keys[task["item_id"]] < "r006":
                if name in ("liner", "speedy"):
                    skip = client.post(f"/api/v1/projects/{SLUG}/tasks/{task['assignment_id']}/skip/")
                    assert skip.status_code == 200, skip.content
                    continue
                choice = "a" if left == first[task["item_id"]] else "b"
            elif name in ("good", "bad"):
                break  # they stop after r005
            elif name == "liner":
                choice, liner_picked[task["item_id"]] = "a", left
            else:
                choice = "a" if left == liner_picked[task["item_id"]] else "b"
            _submit(client, task, choice, ms=300 if name == "speedy" else 4000)
        assert len(shown_gold[name]) == 5
    return {"shown_gold": shown_gold, "gold": gold}


def _trust_rows(client):
    answer = client.get(f"/api/v1/projects/{SLUG}/trust/")
    assert answer.status_code == 200, answer.content
    return {row["username"]: row for row in answer.json()["annotators"]}


def test_accuracy_trust_and_flags_are_what_a_hand_count_gives(judged, researcher, annotator, api_client_for, client):
    rows = _trust_rows(api_client_for(researcher))
    assert set(rows) == {"good", "bad", "liner", "speedy"}
    # Beta(1, 1) prior: trust = (right + 1) / (graded + 2).
    assert (rows["good"]["gold_graded"], rows["good"]["gold_right"]) == (5, 4)
    assert rows["good"]["accuracy"] == pytest.approx(0.8) and rows["good"]["trust"] == pytest.approx(5 / 7)
    assert (rows["bad"]["gold_right"], rows["bad"]["accuracy"]) == (0, 0.0)
    assert rows["bad"]["trust"] == pytest.approx(1 / 7)
    assert rows["speedy"]["trust"] == pytest.approx(6 / 7)
    liner_right = sum(judged["shown_gold"]["liner"])  # "a" is right where the better answer was shown left
    assert rows["liner"]["gold_right"] == liner_right
    assert rows["liner"]["trust"] == pytest.approx((liner_right + 1) / 7)
    assert [rows[name]["answers"] for name in ("good", "bad", "liner", "speedy")] == [11, 11, 11, 11]
    assert {name: row["flags"] for name, row in rows.items()} == {
        "good": [],
        "bad": [],
        "liner": ["straight_lining"],
        "speedy": ["too_fast"],
    }
    assert rows["speedy"]["median_time_ms"] == 300 and rows["good"]["median_time_ms"] == 4000
    # Annotators do not see each other's trust; neither does anyone outside the project.
    assert api_client_for(annotator).get(f"/api/v1/projects/{SLUG}/trust/").status_code == 404
    # The dashboard's trust section shows the same figures.
    client.force_login(researcher)
    page = client.get(f"/projects/{SLUG}/dashboard/").content.decode()
    section = page[page.index('id="trust"') :]
    section = section[: section.index("</section>")]
    assert "5 gold tasks, served as 100% of tasks" in section
    good = section[section.index('data-annotator="good"') :].split("</tr>")[0]
    assert "4 / 5" in good and "80%" in good and "0.71" in good and "data-flag" not in good
    liner = section[section.index('data-annotator="liner"') :].split("</tr>")[0]
    speedy = section[section.index('data-annotator="speedy"') :].split("</tr>")[0]
    assert 'data-flag="straight_lining"' in liner and 'data-flag="too_fast"' in speedy and "300 ms" in speedy


def _snapshot(client, **given):
    answer = client.post(f"/api/v1/projects/{SLUG}/snapshots/", {"test_fraction": 0.0, **given}, format="json")
    assert answer.status_code == 201, answer.content
    from annotation.models import DatasetSnapshot

    snapshot = DatasetSnapshot.objects.get(pk=answer.json()["id"])
    rows = [json.loads(line) for line in Path(snapshot.path).read_text().splitlines()]
    return sorted(rows, key=lambda r: (r["item_key"], r["chosen"], r["n_votes"]))


def test_snapshots_leave_out_untrusted_and_flagged_annotators_like_naming_the_others(
    judged, researcher, api_client_for
):
    client = api_client_for(researcher)
    rows = _trust_rows(client)
    everyone = _snapshot(client)
    real = {f"r{i:03d}" for i in range(12)}
    # Gold items measure people and train nothing: every ordinary item has its pair, no gold item has one.
    assert {row["item_key"] for row in everyone} == real and len(everyone) == 12
    assert {row["n_votes"] for row in everyone} == {2}

    trusted = sorted(name for name, row in rows.items() if row["trust"] >= 0.5)
    assert "bad" not in trusted and {"good", "speedy"} <= set(trusted)
    by_trust = _snapshot(client, min_trust=0.5)
    assert by_trust == _snapshot(client, annotators=trusted)
    # bad's votes are gone: r000..r005 keep good's vote only.
    assert [row["n_votes"] for row in by_trust if row["item_key"] < "r006"] == [1] * 6

    unflagged = _snapshot(client, exclude_flagged=True)
    assert unflagged == _snapshot(client, annotators=["bad", "good"])
    # Only good and bad judged r000..r005: the other six items' pairs go with the flagged annotators.
    assert {row["item_key"] for row in unflagged} == {f"r{i:03d}" for i in range(6)} and len(unflagged) == 6

    both = _snapshot(client, min_trust=0.5, exclude_flagged=True)
    assert both == _snapshot(client, annotators=["good"])
    assert len(both) == 6 and {row["n_votes"] for row in both} == {1}

    bad_filter = client.post(f"/api/v1/projects/{SLUG}/snapshots/", {"min_trust": 1.5}, format="json")
    assert bad_filter.status_code == 400 and "min_trust" in json.dumps(bad_filter.json())


# ------------------------------------------------------------------------------------- marking gold


def test_marking_gold_is_for_managers_and_bad_answers_are_refused_naming_the_field(
    project, researcher, annotator, api_client_for, tmp_path
):
    _import(project, _write_items(tmp_path / "items.jsonl", real=3, gold=[]))
    _member(project, annotator)
    url = f"/api/v1/projects/{SLUG}/gold/"
    manager = api_client_for(researcher)
    assert api_client_for(annotator).post(url, {"items": []}, format="json").status_code == 404
    assert api_client_for(annotator).get(url).status_code == 404

    def refused(body, field):
        answer = manager.post(url, body, format="json")
        assert answer.status_code == 400, answer.content
        assert field in json.dumps(answer.json()), answer.json()

    refused({"items": [{"external_id": "nope", "answer": {"choice": "a"}}]}, "items[0].external_id")
    refused({"items": [{"external_id": "r000", "answer": {"choice": "left"}}]}, "items[0].answer")
    refused({"items": [{"external_id": "r000", "response": 1, "answer": {"choice": "a"}}]}, "items[0].response")
    refused({"gold_rate": 1.5}, "gold_rate")
    refused({"items": [{"external_id": "r000"}]}, "answer")
    # All or nothing: a good entry before a bad one is not stored.
    refused(
        {"items": [{"external_id": "r000", "answer": {"choice": "a"}}, {"external_id": "x", "answer": {}}]},
        "items[1].external_id",
    )
    assert manager.get(url).json()["items"] == []
    marked = manager.post(url, {"items": [{"external_id": "r001", "answer": {"choice": "tie"}}]}, format="json")
    assert marked.json()["items"] == [{"external_id": "r001", "response": None, "answer": {"choice": "tie"}}]
    unmarked = manager.post(url, {"items": [{"external_id": "r001", "answer": None}]}, format="json")
    assert unmarked.json()["items"] == []


def test_an_import_with_a_bad_gold_answer_names_its_line(db, researcher, tmp_path):
    from annotation import services
    from annotation.models import GoldAnswer, Item
    from loupe.errors import ApplicationError

    project = services.project_create(slug="gold-fix", kind="correction", created_by=researcher)
    path = tmp_path / "items.jsonl"
    lines = [
        {"external_id": "c1", "prompt": "p", "responses": [{"text": "A red cube."}], "gold": {"hallucination": False}},
        {"external_id": "c2", "prompt": "p", "responses": [{"text": "A red cube."}],
         "gold": {"hallucination": True, "segments": [{"text": "blue"}]}},
    ]  # fmt: skip
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    with pytest.raises(ApplicationError) as refused:
        services.items_import(project=project, path=path)
    assert refused.value.extra == {"field": "gold.answer", "line": 2}
    assert "'blue' is not in the response" in refused.value.message
    assert not Item.objects.filter(project=project).exists(), "all or nothing"
    lines[1]["gold"]["segments"] = [{"text": "red", "type": "attribute"}]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    services.items_import(project=project, path=path)
    stored = {g.item.external_id: g.answer for g in GoldAnswer.objects.select_related("item")}
    assert stored == {
        "c1": {"hallucination": False, "segments": []},
        "c2": {"hallucination": True, "segments": [{"start": 2, "end": 5, "text": "red", "type": "attribute"}]},
    }


# ------------------------------------------------------------------------------ grading, every kind


def test_grading_rules_of_every_kind():
    grade = gold_rules.gold_grade
    # Pairwise: the annotator's sides are screen sides; positions_shown maps them back.
    assert grade(kind="pairwise", gold={"choice": "a"}, given=GivenAnswer(choice="b", positions_shown=(1, 0)))
    assert not grade(kind="pairwise", gold={"choice": "a"}, given=GivenAnswer(choice="a", positions_shown=(1, 0)))
    assert grade(kind="pairwise", gold={"choice": "tie"}, given=GivenAnswer(choice="tie", positions_shown=(0, 1)))
    assert grade(kind="pairwise", gold={"choice": "a"}, given=GivenAnswer(choice="a", positions_shown=(0, 2))) is None
    assert grade(kind="rating", gold={"level": 2}, given=GivenAnswer(level=2))
    assert not grade(kind="rating", gold={"level": 2}, given=GivenAnswer(level=1))
    assert grade(kind="ranking", gold={"order": [1, 0, 2]}, given=GivenAnswer(order=(1, 0, 2)))
    assert not grade(kind="ranking", gold={"order": [1, 0, 2]}, given=GivenAnswer(order=(0, 1, 2)))
    wrong = {"hallucination": True, "segments": [{"start": 2, "end": 5, "text": "red", "type": "attribute"}]}
    marked = ({"start": 0, "end": 3, "type": "attribute"},)
    assert grade(kind="correction", gold=wrong, given=GivenAnswer(segments=marked))
    assert not grade(
        kind="correction", gold=wrong, given=GivenAnswer(segments=({"start": 5, "end": 9, "type": "attribute"},))
    )
    assert not grade(
        kind="correction", gold=wrong, given=GivenAnswer(segments=({"start": 2, "end": 5, "type": "count"},))
    )
    assert not grade(kind="correction", gold=wrong, given=GivenAnswer())
    assert grade(kind="correction", gold={"hallucination": False, "segments": []}, given=GivenAnswer())
    check = gold_rules.gold_answer_check
    assert check(
        kind="rating", answer={"level": "funny"}, response_texts=["x"], levels=["dull", "funny"], types=[]
    ) == {"level": 1}
    with pytest.raises(gold_rules.GoldError):
        check(kind="ranking", answer={"order": [0, 0]}, response_texts=["x", "y"], levels=[], types=[])
    flags = gold_rules.abuse_flags(answers=10, distinct_answers=1, times_ms=[100] * 5, rules=gold_rules.FlagRules())
    assert flags == ["straight_lining", "too_fast"]
    assert gold_rules.abuse_flags(answers=9, distinct_answers=1, times_ms=[100] * 4, rules=gold_rules.FlagRules()) == []


def test_correction_and_ranking_gold_are_graded_through_the_queue(db, researcher, annotator, tmp_path):
    from annotation import services
    from annotation.models import Response
    from annotation.selectors_trust import annotator_trust
    from annotation.services.gold import GoldEntry, gold_answers_set, gold_rate_set
    from annotation.services.queue import SUBMITTERS

    texts = ["A red cube.", "A blue cone.", "A green ball."]
    # Marks "red cube" (overlapping the gold's "red") as an attribute error; ranks positions 2, 0, 1 whatever
    # the shown order: both right.
    marked = {"start": 2, "end": 10, "type": "attribute", "replacement": "blue cube", "original": "red cube"}
    cases = {
        "correction": ({"hallucination": True, "segments": [{"text": "red", "type": "attribute"}]}, texts[:1]),
        "ranking": ({"order": [2, 0, 1]}, texts),
    }
    for kind, (gold, responses) in cases.items():
        project = services.project_create(slug=f"gold-{kind}", kind=kind, created_by=researcher)
        services.project_member_add(project=project, user=annotator)
        lines = [
            {"external_id": f"x{n}", "prompt": "p", "responses": [{"text": t} for t in responses]} for n in range(3)
        ]
        path = tmp_path / f"{kind}.jsonl"
        path.write_text("".join(json.dumps(line) + "\n" for line in lines))
        services.items_import(project=project, path=path)
        gold_answers_set(project=project, entries=[GoldEntry(external_id="x2", answer=gold)])
        gold_rate_set(project=project, gold_rate=1.0)
        assignment = services.assignment_next(project=project, annotator=annotator)
        assert assignment.item.external_id == "x2", "gold first at rate 1, though it is the last item"
        by_position = dict(Response.objects.filter(item=assignment.item).values_list("position", "pk"))
        answer = {"segments": [marked]} if kind == "correction" else {"order": [by_position[p] for p in (2, 0, 1)]}
        SUBMITTERS[kind](assignment_id=assignment.pk, annotator=annotator, client_request_id=f"g-{kind}", **answer)
        (row,) = annotator_trust(project=project)
        assert (row.gold_graded, row.gold_right, row.trust) == (1, 1, pytest.approx(2 / 3)), kind
