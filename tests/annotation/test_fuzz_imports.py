"""Issue 16, "Prove it": hypothesis over every import format through the import API. Whatever the file holds
(a good file with some of its values replaced by hostile ones, keys dropped or added, raw bytes), the answer
is a 201 or a 400 naming what is wrong, never a 500, and a 400 stores nothing (no item, no response, no
annotation, no imported annotator).

Each test starts from a file the format's readers accept and mutates it, so most examples get past the
parser into the checks and the store. Derandomized: CI sees the same examples every run.
"""

import copy
import csv
import io
import itertools
import json
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from annotation import services
from annotation.formats.common import CorrectionRecord, ItemRecord, PairwiseRecord, RankingRecord, ResponseRecord
from annotation.formats.label_studio import write_label_studio_json
from annotation.models import Correction, Item, PairwiseJudgment, Ranking, Rating, Response

pytestmark = [pytest.mark.django_db]

FUZZ = settings(
    max_examples=45,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)

# Values known to have broken an import once (issue 16 items 4 and 5), beside whatever hypothesis makes up.
HOSTILE_TEXTS = [
    "",
    " ",
    "\ud800",
    "a\udfffb",
    "\x00",
    "x\x00y",
    "x" * 5000,
    "-1",
    "1e400",
    "NaN",
    "../../etc/passwd",
    "/etc/passwd",
    "http://[::1/x.png",
    "http://[zz::1]/x.png",
    "http://example.com:99999/x.png",
    "http://127.0.0.1:1/x.png",
    "ftp://127.0.0.1/x.png",
    "data:image/png;base64,AAAA",
    "funny",
    "somewhat funny",
    "left",
    "tie",
    "<script>alert(1)</script>",
]
HOSTILE_NUMBERS = [0, -1, 1, 2, 3, 2.5, -(2**63), 2**63, 10**30, 1e300, math.inf, -math.inf, math.nan, True, False]

texts = st.one_of(st.sampled_from(HOSTILE_TEXTS), st.text(max_size=30))
numbers = st.one_of(st.sampled_from(HOSTILE_NUMBERS), st.integers(), st.floats(allow_nan=True))
scalars = st.one_of(texts, numbers, st.none())
hostile = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.dictionaries(st.sampled_from(["a", "text", "value", "0"]), children, max_size=3),
    ),
    max_leaves=6,
) | st.builds(lambda depth: json.loads("[" * depth + "]" * depth), st.integers(30, 60))


def _slots(value: Any, path: tuple = ()) -> list[tuple]:
    """Paths to every value inside a JSON-like document (the document itself excluded)."""
    found = []
    if isinstance(value, dict):
        for key, child in value.items():
            found.append((*path, key))
            found.extend(_slots(child, (*path, key)))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found.append((*path, index))
            found.extend(_slots(child, (*path, index)))
    return found


@st.composite
def mutated(draw, base: Any, *, extra_keys: tuple[str, ...] = ()) -> Any:
    """`base` with up to four of its values replaced by hostile ones, removed, or keys added."""
    document = copy.deepcopy(base)
    for _ in range(draw(st.sampled_from([0, 1, 1, 1, 2, 2, 3, 4]))):
        slots = _slots(document)
        if not slots:
            break
        path = draw(st.sampled_from(slots))
        parent = document
        for step in path[:-1]:
            parent = parent[step]
        action = draw(st.sampled_from(["replace", "replace", "replace", "delete", "add"]))
        if action == "replace":
            parent[path[-1]] = draw(hostile)
        elif action == "delete":
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[draw(st.sampled_from(extra_keys or ("extra",)))] = draw(hostile)
        else:
            parent.append(draw(hostile))
    return document


_examples = itertools.count(1)


def _fresh_ids(document: Any, key: str) -> Any:
    """Make the ids (`key`) of a document new to the project, so that an example after a successful one is
    not merely refused as "already there with another content" (a 400 that would hide what follows)."""
    n = next(_examples)
    stack = [document]
    while stack:
        current = stack.pop()
        if isinstance(current, dict):
            if isinstance(current.get(key), str | int) and not isinstance(current.get(key), bool):
                current[key] = f"e{n}-{current[key]}"
            stack.extend(current.values())
        elif isinstance(current, list):
            stack.extend(current)
    return document


def _json_text(value: Any) -> str:
    # ensure_ascii writes lone surrogates as \\ud800 escapes; allow_nan writes NaN and Infinity, which
    # Python's reader accepts (and the import must refuse).
    return json.dumps(value, ensure_ascii=True, allow_nan=True)


@pytest.fixture
def media(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    settings.LOUPE_IMAGE_FETCH_SECONDS = 2
    return tmp_path / "media"


@pytest.fixture
def projects(researcher, media):
    return {kind: services.project_create(slug=f"fuzz-{kind}", kind=kind, created_by=researcher) for kind in KINDS}


KINDS = ("pairwise", "correction", "rating", "ranking")


def _stored() -> tuple[int, ...]:
    from django.contrib.auth import get_user_model

    return (
        Item.objects.count(),
        Response.objects.count(),
        PairwiseJudgment.objects.count(),
        Correction.objects.count(),
        Rating.objects.count(),
        Ranking.objects.count(),
        get_user_model().objects.filter(username__startswith="import:").count(),
    )


def _post_import(client, slug: str, import_format: str, content: bytes, name: str):
    upload = io.BytesIO(content)
    upload.name = name
    before = _stored()
    response = client.post(
        f"/api/v1/projects/{slug}/imports/", {"format": import_format, "file": upload}, format="multipart"
    )
    assert response.status_code in (201, 400), (response.status_code, response.content[:500])
    if response.status_code == 400:
        body = response.json()
        assert body.get("detail") or body.get("message") or body, body
        assert _stored() == before, "a refused import stored something"
    return response


# ------------------------------------------------------------------------------------------ Loupe JSONL

LOUPE_LINES = [
    {
        "external_id": "a1",
        "prompt": "Describe the image.",
        "image": None,
        "responses": [{"text": "A cup.", "model": "m1", "meta": {"t": 0.7}}, {"text": "A plate.", "model": "m2"}],
        "meta": {"source": "fuzz", "n": 1},
    },
    {"external_id": 2, "prompt": "What is it?", "responses": [{"text": "A dog."}, {"text": "A cat."}]},
]


@FUZZ
@given(
    lines=mutated(LOUPE_LINES, extra_keys=("responses", "image", "meta", "model", "text")), kind=st.sampled_from(KINDS)
)
def test_loupe_jsonl_imports_never_fail_with_a_500_nor_store_part(lines, kind, projects, researcher, api_client_for):
    lines = _fresh_ids(lines, "external_id")
    content = "\n".join(_json_text(line) for line in (lines if isinstance(lines, list) else [lines]))
    _post_import(api_client_for(researcher), f"fuzz-{kind}", "loupe-jsonl", content.encode(), "items.jsonl")


# -------------------------------------------------------------------------------------- RLHF-V (JSON)

RLHF_V_RECORDS = [
    {"idx": 7, "text": json.dumps({"question": "Q?", "chosen": "A blue cup.", "rejected": "A red cup."})},
    {
        "idx": "8",
        "question": "Q2?",
        "chosen": "Two dogs.",
        "rejected": "Three dogs.",
        "chosen_spans": [[0, 3]],
        "rejected_spans": [[0, 5]],
        "ds_name": "fuzz",
    },
]


@FUZZ
@given(records=mutated(RLHF_V_RECORDS, extra_keys=("chosen_spans", "rejected_spans", "image", "image_path", "idx")))
def test_rlhf_v_imports_never_fail_with_a_500_nor_store_part(records, projects, researcher, api_client_for):
    content = _json_text(_fresh_ids(records, "idx")).encode()
    _post_import(api_client_for(researcher), "fuzz-correction", "rlhf-v", content, "rlhf_v.json")


# ------------------------------------------------------------------------------------ RLAIF-V (Parquet)

RLAIF_V_COLUMNS = ("question", "chosen", "rejected", "idx", "ds_name", "image_path", "origin_split")
parquet_cells = st.one_of(
    st.sampled_from(HOSTILE_TEXTS),
    st.text(max_size=20),
    st.none(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(),
    st.binary(max_size=20),
)


@st.composite
def parquet_tables(draw):
    """A table of RLAIF-V's columns (some dropped, each of one drawn type) of 1-3 rows."""
    n_rows = draw(st.integers(1, 3))
    columns = {}
    for name in RLAIF_V_COLUMNS:
        if name in ("question", "chosen", "rejected") and draw(st.integers(0, 9)) > 0:
            columns[name] = [draw(st.sampled_from(["Q?", "A good answer.", "A bad answer."])) for _ in range(n_rows)]
        if draw(st.integers(0, 3)) == 0:
            kind = draw(st.sampled_from(["text", "int", "float", "binary", "mixed"]))
            cells = {
                "text": st.one_of(st.sampled_from(HOSTILE_TEXTS), st.text(max_size=20), st.none()),
                "int": st.one_of(st.integers(-(2**63), 2**63 - 1), st.none()),
                "float": st.floats(),
                "binary": st.binary(max_size=20),
                "mixed": parquet_cells,
            }[kind]
            columns[name] = [draw(cells) for _ in range(n_rows)]
    if draw(st.booleans()):
        columns["image"] = [
            draw(st.one_of(st.none(), st.fixed_dictionaries({"bytes": st.binary(max_size=30), "path": texts})))
            for _ in range(n_rows)
        ]
    if "idx" not in columns:
        columns["idx"] = [f"e{next(_examples)}-{row}" for row in range(n_rows)]
    return columns


def _parquet_bytes(columns: dict[str, list]) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    arrays = {}
    for name, values in columns.items():
        try:
            arrays[name] = pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, UnicodeEncodeError):
            # Mixed types: stored as their text (a column of a Parquet file has one type).
            arrays[name] = pa.array([None if v is None else repr(v) for v in values])
    sink = io.BytesIO()
    pq.write_table(pa.table(arrays) if arrays else pa.table({"x": [1]}), sink)
    return sink.getvalue()


@FUZZ
@given(columns=parquet_tables(), corrupt=st.one_of(st.none(), st.integers(0, 400)))
def test_rlaif_v_parquet_imports_never_fail_with_a_500_nor_store_part(
    columns, corrupt, projects, researcher, api_client_for
):
    content = _parquet_bytes(columns)
    if corrupt is not None:  # a damaged file: one byte flipped
        position = corrupt % len(content)
        content = content[:position] + bytes([content[position] ^ 0xFF]) + content[position + 1 :]
    _post_import(api_client_for(researcher), "fuzz-pairwise", "rlaif-v", content, "rlaif_v.parquet")


@FUZZ
@given(columns=parquet_tables())
def test_rlhf_v_parquet_imports_never_fail_with_a_500_nor_store_part(columns, projects, researcher, api_client_for):
    if "question" in columns and columns.get("text") is None and "chosen" in columns:
        columns["text"] = [json.dumps({"question": "Q", "chosen": "a b", "rejected": "a c"})] * len(columns["question"])
    _post_import(api_client_for(researcher), "fuzz-correction", "rlhf-v", _parquet_bytes(columns), "rlhf_v.parquet")


# ------------------------------------------------------------------------------------ caption contest

CONTEST_HEADER = ["rank", "caption", "funny", "somewhat_funny", "unfunny", "count", "score", "precision", "contest"]
CONTEST_ROWS = [
    ["1", "I said no meetings.", "10", "5", "2", "17", "2.47", "0.1", "900"],
    ["2", "Not again.", "2", "5", "10", "17", "1.53", "0.1", "900"],
]
csv_cells = st.one_of(
    st.sampled_from(HOSTILE_TEXTS), st.sampled_from(["1e400", "-5", "2.5", "inf", "nan", "12.0", "", "0"]), st.text()
)


@FUZZ
@given(
    table=mutated([CONTEST_HEADER, *CONTEST_ROWS]),
    cells=st.lists(st.tuples(st.integers(0, 2), st.integers(0, 8), csv_cells), max_size=4),
)
def test_caption_contest_imports_never_fail_with_a_500_nor_store_part(
    table, cells, projects, researcher, api_client_for
):
    rows = [[str(v) if not isinstance(v, str) else v for v in (r if isinstance(r, list) else [r])] for r in table]
    contest = f"e{next(_examples)}"
    for row in rows[1:]:
        if len(row) > 8 and row[8] == "900":
            row[8] = contest
    for row, column, value in cells:
        if row < len(rows) and column < len(rows[row]):
            rows[row][column] = value
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    upload = io.BytesIO(out.getvalue().encode("utf-8", "surrogatepass"))
    upload.name = "900_summary.csv"
    before = _stored()
    response = api_client_for(researcher).post(
        "/api/v1/projects/fuzz-rating/imports/",
        {"format": "caption-contest", "file": upload},
        format="multipart",
    )
    assert response.status_code in (201, 400), (response.status_code, response.content[:500])
    if response.status_code == 400:
        assert _stored() == before


# ---------------------------------------------------------------------------------------- Label Studio


def _label_studio_tasks(tmp_path_factory, kind: str) -> list:
    responses = [ResponseRecord("A cup and a red plate.", "m1"), ResponseRecord("A cup.", "m2")]
    record = ItemRecord(external_id="ls1", prompt="Describe.", responses=responses)
    if kind == "pairwise":
        record.pairwise = [PairwiseRecord(0, 1, "a", strength=2, reason="closer", annotator="ann")]
    elif kind == "ranking":
        record.rankings = [RankingRecord(order=[1, 0], annotator="ann")]
    elif kind == "correction":
        record.corrections = [
            CorrectionRecord(
                response=0, corrected_text="A cup and a blue plate.", segments=[(12, 15, "blue", "object")]
            )
        ]
    elif kind == "rating":
        from annotation.formats.common import RatingRecord

        record.ratings = [RatingRecord(response=0, level="funny", annotator="ann")]
    out = tmp_path_factory.mktemp(f"ls-{kind}")
    write_label_studio_json(rows=[record], out_dir=out, snapshot_hash="fuzz", kind=kind)
    return json.loads((out / "tasks.json").read_text())


@pytest.fixture(scope="module")
def label_studio_bases(tmp_path_factory):
    return {kind: _label_studio_tasks(tmp_path_factory, kind) for kind in KINDS}


@FUZZ
@given(kind=st.sampled_from(KINDS), data=st.data())
def test_label_studio_imports_never_fail_with_a_500_nor_store_part(
    kind, data, label_studio_bases, projects, researcher, api_client_for
):
    tasks = data.draw(
        mutated(label_studio_bases[kind], extra_keys=("annotations", "was_cancelled", "value", "from_name", "type"))
    )
    content = _json_text(_fresh_ids(tasks, "external_id")).encode()
    _post_import(api_client_for(researcher), f"fuzz-{kind}", "label-studio", content, "tasks.json")


# ------------------------------------------------------------------------------------------ raw bytes


@FUZZ
@given(
    import_format=st.sampled_from(["loupe-jsonl", "rlhf-v", "rlaif-v", "label-studio", "caption-contest"]),
    content=st.one_of(
        st.binary(max_size=200),
        st.sampled_from([b"PAR1", b"PAR1\x00\x00PAR1", b"[", b"{}", b"[{}]", b"\xff\xfe", b"\xef\xbb\xbf[]", b"a,b\n"]),
    ),
)
def test_any_bytes_in_any_format_are_a_201_or_a_400(import_format, content, projects, researcher, api_client_for):
    slug = {"rlhf-v": "fuzz-correction", "caption-contest": "fuzz-rating"}.get(import_format, "fuzz-pairwise")
    _post_import(api_client_for(researcher), slug, import_format, content, "upload.bin")
