"""Issue 16, "Prove it": hypothesis over the submit endpoint of every project kind. Whatever the body holds
(plausible answers with hostile values, missing or extra fields, wrong types, raw JSON with NaN or deep
nesting, other assignment ids), the answer is a 2xx or a 4xx, never a 500; a refused submit stores nothing,
and an accepted one leaves exactly one annotation per assignment. Derandomized: CI sees the same examples.
"""

import itertools
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from annotation.models import Correction, PairwiseJudgment, Ranking, Rating
from tests.annotation.test_queue import make_project, next_task

pytestmark = [pytest.mark.django_db]

FUZZ = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
KINDS = ("pairwise", "correction", "rating", "ranking")
ANNOTATIONS = {"pairwise": PairwiseJudgment, "correction": Correction, "rating": Rating, "ranking": Ranking}

HOSTILE = [
    None,
    True,
    0,
    -1,
    1,
    2,
    3,
    2.5,
    10**30,
    -(2**63),
    1e300,
    "",
    "a",
    "b",
    "tie",
    "both_bad",
    "\ud800",
    "x\x00",
    "x" * 5000,
    "1e400",
    [],
    {},
]
hostile = st.one_of(st.sampled_from(HOSTILE), st.integers(), st.floats(), st.text(max_size=20))
_ids = itertools.count(1)


@st.composite
def segments(draw):
    def one():
        return st.fixed_dictionaries(
            {},
            optional={
                "start": st.one_of(st.integers(-5, 60), hostile),
                "end": st.one_of(st.integers(-5, 60), hostile),
                "type": st.one_of(st.sampled_from(["object", "attribute", "count", "relation", "nope"]), hostile),
                "replacement": st.one_of(st.text(max_size=10), hostile),
                "original": st.one_of(st.text(max_size=10), hostile),
            },
        )

    return draw(st.one_of(st.lists(one(), max_size=4), hostile))


def _plausible(kind: str, task: dict) -> dict:
    """A good answer of `kind` to `task` (what the page would send)."""
    if kind == "pairwise":
        return {"choice": "a", "strength": 2, "reason": "closer to the image"}
    if kind == "rating":
        return {"level": 1}
    if kind == "ranking":
        return {"order": [r["id"] for r in reversed(task["responses"])]}
    text = next(r["text"] for r in task["responses"] if r["id"] == task.get("response_id", r["id"]))
    word = text.split(" ")[0]
    return {"segments": [{"start": 0, "end": len(word), "type": "object", "replacement": "X", "original": word}]}


@st.composite
def bodies(draw, kind: str, task: dict):
    """A good answer of the kind with up to three fields (its own or another kind's) made hostile or removed."""
    response_ids = [r["id"] for r in task["responses"]]
    fields = {
        "client_request_id": st.one_of(st.text(min_size=1, max_size=70), hostile),
        "time_spent_ms": st.one_of(st.integers(-10, 10**12), hostile),
        "choice": st.one_of(st.sampled_from(["a", "b", "tie", "both_bad"]), hostile),
        "strength": st.one_of(st.sampled_from([1, 2]), hostile),
        "reason": st.one_of(st.text(max_size=30), hostile),
        "segments": segments(),
        "level": st.one_of(st.integers(-3, 6), hostile),
        "order": st.one_of(
            st.permutations(response_ids),
            st.lists(st.one_of(st.sampled_from(response_ids), st.integers()), max_size=5),
            hostile,
        ),
        "ai_rewrite_used": st.one_of(st.booleans(), hostile),
        "extra": hostile,
    }
    body = {"client_request_id": f"fuzz-{next(_ids)}", **_plausible(kind, task)}
    for _ in range(draw(st.sampled_from([0, 1, 1, 1, 2, 3]))):
        name = draw(st.sampled_from(sorted(fields)))
        if draw(st.integers(0, 4)) == 0:
            body.pop(name, None)
        else:
            body[name] = draw(fields[name])
    return body


@pytest.fixture
def tasks(researcher, annotator, api_client_for):
    """Per kind: the annotator's client, the project and a task taken from its queue."""
    client = api_client_for(annotator)
    taken = {}
    for kind in KINDS:
        project = make_project(researcher, [annotator], kind=kind, items=3, responses=3, slug=f"fuzz-{kind}")
        task = next_task(client, project.slug)
        assert task is not None
        taken[kind] = (project, task)
    return client, taken


def _check_submit(client, project, kind: str, assignment_id: int, raw_body: str):
    model = ANNOTATIONS[kind]
    before = model.objects.count()
    response = client.post(
        f"/api/v1/projects/{project.slug}/tasks/{assignment_id}/submit/", raw_body, content_type="application/json"
    )
    assert response.status_code < 500, (response.status_code, response.content[:500])
    if response.status_code >= 400:
        assert model.objects.count() == before, "a refused submit stored an annotation"
    # One annotation per assignment, whatever was sent (changing an answer replaces it).
    assert model.objects.filter(item__project=project).count() <= 1
    return response


@FUZZ
@given(kind=st.sampled_from(KINDS), data=st.data())
def test_a_submit_of_any_shape_is_never_a_500_and_a_refused_one_stores_nothing(kind, data, tasks):
    client, taken = tasks
    project, task = taken[kind]
    body = data.draw(bodies(kind, task))
    raw = json.dumps(body, allow_nan=True)  # NaN and Infinity as Python writes them: the parser must refuse
    _check_submit(client, project, kind, task["assignment_id"], raw)


@FUZZ
@given(
    kind=st.sampled_from(KINDS),
    assignment=st.one_of(st.integers(0, 2**70), st.sampled_from([0, 2**31, 2**63, 2**64])),
    raw=st.one_of(
        st.sampled_from(
            [
                "",
                "null",
                "[]",
                '"a"',
                "1",
                "{",
                '{"client_request_id": "x", "level": NaN}',
                '{"client_request_id": "x", "level": 1e400}',
                '{"client_request_id": "x", "choice": "\\ud800"}',
                '{"client_request_id": "x", "segments": ' + "[" * 200 + "]" * 200 + "}",
            ]
        ),
        st.text(max_size=40),
    ),
)
def test_any_body_to_any_assignment_is_never_a_500(kind, assignment, raw, tasks):
    client, taken = tasks
    project, task = taken[kind]
    target = task["assignment_id"] if assignment % 3 == 0 else assignment
    _check_submit(client, project, kind, target, raw)
