"""Issue 16, items 4 and 5: input that made HTTP 500s or stored bad rows is a 400 naming the line or field,
with nothing stored: deep JSON (anonymous crowd endpoints too), lone surrogates and NUL characters, numbers
out of range, corrupt and encrypted zips, malformed or unreachable image URLs, over-long ids and model names,
rankings that are not a permutation, strengths above the scale, correction types the project does not have.
"""

import http.server
import io
import json
import threading
import zipfile

import pytest

from annotation import services
from annotation.formats.common import CorrectionRecord, ItemRecord, PairwiseRecord, RankingRecord, ResponseRecord
from annotation.formats.label_studio import write_label_studio_json
from annotation.models import Correction, Item, PairwiseJudgment, Ranking, Response
from tests.annotation.test_queue import make_project

GOOD = {"external_id": "x1", "prompt": "Describe.", "responses": [{"text": "A cup."}, {"text": "A plate."}]}


@pytest.fixture
def media(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    return tmp_path / "media"


def _import(client, slug, line: str, *, images: bytes | None = None):
    upload = io.BytesIO((line + "\n").encode("utf-8", "surrogatepass"))
    upload.name = "items.jsonl"
    data = {"format": "loupe-jsonl", "file": upload}
    if images is not None:
        archive = io.BytesIO(images)
        archive.name = "images.zip"
        data["images"] = archive
    return client.post(f"/api/v1/projects/{slug}/imports/", data, format="multipart")


def _line(**changes) -> str:
    return json.dumps({**GOOD, **changes})


def _with(text_field: str, raw: str) -> str:
    """A line whose `text_field` is the raw JSON text `raw` (escapes such as \\ud800 kept as written)."""
    templates = {
        "prompt": '{"external_id": "x1", "prompt": RAW, "responses": [{"text": "A"}, {"text": "B"}]}',
        "external_id": '{"external_id": RAW, "prompt": "p", "responses": [{"text": "A"}, {"text": "B"}]}',
        "responses[0].text": '{"external_id": "x1", "prompt": "p", "responses": [{"text": RAW}, {"text": "B"}]}',
        "meta": '{"external_id": "x1", "prompt": "p", "meta": {"score": RAW}, "responses": [{"text": "A"}]}',
    }
    return templates[text_field].replace("RAW", raw)


LOUPE_JSONL_CASES = {
    "lone surrogate in the prompt": (_with("prompt", '"\\ud800 a cat"'), "prompt", "lone surrogate"),
    "lone surrogate in the id": (_with("external_id", '"\\udfff"'), "external_id", "lone surrogate"),
    "lone surrogate in a response": (_with("responses[0].text", '"\\ud800"'), "responses[0].text", "lone surrogate"),
    "NUL in the prompt": (_with("prompt", '"a\\u0000b"'), "prompt", "NUL"),
    "NUL in the id": (_with("external_id", '"x\\u0000"'), "external_id", "NUL"),
    "1e400 in the metadata": (_with("meta", "1e400"), "meta", "not a finite number"),
    "NaN in the metadata": (_with("meta", "NaN"), "meta", "not a finite number"),
    "Infinity in the metadata": (_with("meta", "-Infinity"), "meta", "not a finite number"),
    "deep metadata": (_line(meta={"a": json.loads("[" * 40 + "]" * 40)}), "meta", "nested deeper"),
    "a line nested 100000 deep": ("[" * 100_000 + "]" * 100_000, None, "nested too deeply"),
    "a 5000-character id": (_line(external_id="x" * 5000), "external_id", "at most 200"),
    "a 5000-character model name": (
        _line(responses=[{"text": "A", "model": "m" * 5000}, {"text": "B"}]),
        "responses[0].model",
        "at most 200",
    ),
    "a URL with a bad port": (_line(image="http://example.com:99999/x.png"), "image", "Port out of range"),
    "a URL with a broken IPv6 literal": (_line(image="http://[::1/x.png"), "image", "Invalid IPv6 URL"),
    "a URL with a bad IPv6 address": (_line(image="http://[zz::1]/x.png"), "image", "cannot be fetched"),
}


@pytest.mark.production_path  # PostgreSQL refuses NUL and lone surrogates in text, and enforces lengths
@pytest.mark.parametrize("case", list(LOUPE_JSONL_CASES))
def test_a_bad_import_line_is_a_400_naming_its_field_and_stores_nothing(
    case, pairwise_project, researcher, api_client_for, media
):
    line, field, message = LOUPE_JSONL_CASES[case]
    response = _import(api_client_for(researcher), pairwise_project.slug, line)
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["extra"]["line"] == 1 and body["extra"]["field"] == field, body
    assert message in body["message"], body["message"]
    assert not Item.objects.exists() and not Response.objects.exists()
    assert not [p for p in media.rglob("*") if p.is_file()]


@pytest.fixture
def local_server():
    """A web server on loopback that answers 404 to everything (private URLs allowed for it)."""
    server = http.server.HTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    server.RequestHandlerClass.do_GET = lambda self: self.send_error(404)
    server.RequestHandlerClass.log_message = lambda *args: None
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.mark.parametrize(("path", "message"), [("/cat.png", "HTTP 404"), (None, "Connection refused")])
def test_an_image_url_that_answers_404_or_does_not_answer_is_a_400(
    path, message, local_server, pairwise_project, researcher, api_client_for, media, settings
):
    settings.LOUPE_ALLOW_PRIVATE_URLS = True  # the test's server is on loopback
    url = local_server + path if path else "http://127.0.0.1:1/cat.png"
    response = _import(api_client_for(researcher), pairwise_project.slug, _line(image=url))
    assert response.status_code == 400, response.content
    assert response.json()["extra"] == {"line": 1, "field": "image"}
    assert message in response.json()["message"]
    assert not Item.objects.exists()


def _zip(kind: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("a.png", b"x" * 5000)
    raw = bytearray(buffer.getvalue())
    if kind == "corrupt":
        return bytes(raw[:30] + b"garbage" * 10 + raw[-22:])
    # Encrypted: the "encrypted" flag in the local and the central header (what zip -e leaves, minus the key).
    raw[6] |= 1
    raw[raw.rfind(b"PK\x01\x02") + 8] |= 1
    return bytes(raw)


@pytest.mark.parametrize(("kind", "expected"), [("corrupt", {"field": "images"}), ("encrypted", {"line": 1})])
def test_a_corrupt_or_encrypted_image_archive_is_a_400(
    kind, expected, pairwise_project, researcher, api_client_for, media
):
    response = _import(api_client_for(researcher), pairwise_project.slug, _line(image="a.png"), images=_zip(kind))
    assert response.status_code == 400, response.content
    assert expected.items() <= response.json()["extra"].items()
    assert ("encrypted" if kind == "encrypted" else "cannot be read") in response.json()["message"]
    assert not Item.objects.exists()


# ------------------------------------------------------------------------- Label Studio annotations (item 5)


def _ls_file(tmp_path, kind: str, record: ItemRecord):
    write_label_studio_json(rows=[record], out_dir=tmp_path / kind, snapshot_hash="t", kind=kind, scale=("a", "b"))
    return tmp_path / kind / "tasks.json"


def _responses():
    return [ResponseRecord("A cup and a red plate."), ResponseRecord("A cup."), ResponseRecord("Nothing at all.")]


def test_a_label_studio_ranking_that_is_not_a_permutation_is_refused(researcher, tmp_path, media):
    from loupe.errors import ApplicationError

    project = services.project_create(slug="ls-rank", kind="ranking", created_by=researcher)
    record = ItemRecord("r1", "Describe.", responses=_responses(), rankings=[RankingRecord(order=[1, 0])])
    with pytest.raises(ApplicationError) as refused:
        services.items_import(project=project, path=_ls_file(tmp_path, "ranking", record), import_format="label-studio")
    assert refused.value.extra["field"] == "rankings[0].order" and "orders 2 of the item's 3" in refused.value.message
    assert not Item.objects.exists() and not Ranking.objects.exists()


@pytest.mark.parametrize("strength", [3, 1e300, 0.5])
def test_a_label_studio_strength_off_the_scale_is_refused(strength, researcher, tmp_path, media):
    from loupe.errors import ApplicationError

    project = services.project_create(slug="ls-pair", kind="pairwise", created_by=researcher)
    judgment = PairwiseRecord(response_a=0, response_b=1, choice="a", strength=strength, annotator="ann")
    record = ItemRecord("p1", "Describe.", responses=_responses()[:2], pairwise=[judgment])
    with pytest.raises(ApplicationError) as refused:
        services.items_import(
            project=project, path=_ls_file(tmp_path, "pairwise", record), import_format="label-studio"
        )
    assert refused.value.extra["field"] == "pairwise[0].strength", refused.value.extra
    assert not Item.objects.exists() and not PairwiseJudgment.objects.exists()


def test_a_label_studio_correction_type_outside_the_projects_list_is_refused(researcher, tmp_path, media):
    from loupe.errors import ApplicationError

    project = services.project_create(
        slug="ls-corr", kind="correction", created_by=researcher, hallucination_types=["object", "count"]
    )
    text = "A cup and a red plate."
    bad = CorrectionRecord(response=0, corrected_text="A cup.", segments=[(5, 22, ".", "invented-type")])
    record = ItemRecord("c1", "Describe.", responses=[ResponseRecord(text)], corrections=[bad])
    with pytest.raises(ApplicationError) as refused:
        services.items_import(
            project=project, path=_ls_file(tmp_path, "correction", record), import_format="label-studio"
        )
    assert refused.value.extra["field"] == "corrections[0].segments[0].type"
    assert "'invented-type' is not one of the project's hallucination types (object, count)" in refused.value.message
    assert not Item.objects.exists() and not Correction.objects.exists()
    # The project's own types, and the untyped marker readers give plain diffs, import.
    for number, kind in enumerate(("count", "hallucination")):
        good = CorrectionRecord(response=0, corrected_text="A cup.", segments=[(5, 22, ".", kind)])
        record = ItemRecord(f"c{number + 2}", "Describe.", responses=[ResponseRecord(text)], corrections=[good])
        path = _ls_file(tmp_path / kind, "correction", record)
        assert services.items_import(project=project, path=path, import_format="label-studio").annotations == 1


# ---------------------------------------------------------------------------- the JSON API (every endpoint)


def _deep(depth: int) -> str:
    return '{"client_request_id": "r1", "segments": ' + "[" * depth + "]" * depth + "}"


@pytest.fixture
def correction_task(researcher, annotator, api_client_for):
    project = make_project(researcher, [annotator], kind="correction", items=1, responses=1, slug="corr-bad")
    client = api_client_for(annotator)
    task = client.post("/api/v1/projects/corr-bad/tasks/next/").json()
    return client, f"/api/v1/projects/corr-bad/tasks/{task['assignment_id']}/submit/", task, project


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (_deep(100_000), "nested deeper than 32 levels"),
        (_deep(40), "nested deeper than 32 levels"),
        ('{"client_request_id": "r1", "time_spent_ms": 1e400}', "out of range"),
        ('{"client_request_id": "r1", "time_spent_ms": NaN}', "NaN is not a JSON number"),
        ('{"client_request_id": "r\\u0000"}', "$.client_request_id contains a NUL character"),
        (
            '{"client_request_id": "r1", "segments": [{"start": 0, "end": 2, "type": "object", '
            '"original": "i0", "replacement": "\\ud83d"}]}',
            "$.segments[0].replacement contains a lone surrogate",
        ),
    ],
)
def test_a_bad_json_body_is_a_400_saying_what_and_where(body, message, correction_task):
    from annotation.models import Correction

    client, url, _task, _project = correction_task
    response = client.post(url, body, content_type="application/json")
    assert response.status_code == 400, response.content
    assert message in response.json()["message"]
    assert not Correction.objects.exists()


def test_deep_json_from_an_anonymous_crowd_visitor_is_a_400(researcher):
    from django.test import Client

    make_project(researcher, [], kind="rating", items=1, responses=2, slug="crowd-deep", visibility="public")
    client = Client(enforce_csrf_checks=True)
    token = client.get("/crowd/crowd-deep/").cookies["csrftoken"].value
    task = client.post("/api/v1/projects/crowd-deep/tasks/next/", HTTP_X_CSRFTOKEN=token).json()
    url = f"/api/v1/projects/crowd-deep/tasks/{task['assignment_id']}/submit/"
    for body in ('{"level": ' + "[" * 50_000 + "]" * 50_000 + "}", "[" * 5000 + "]" * 5000):
        response = client.post(url, body, content_type="application/json", HTTP_X_CSRFTOKEN=token)
        assert response.status_code == 400 and "nested deeper" in response.json()["message"]


def test_every_api_view_parses_json_with_the_checks(admin_user, api_client_for):
    """The default parser is the checked one: a staff endpoint answers the same 400 (no endpoint of its own)."""
    response = api_client_for(admin_user).post(
        "/api/v1/projects/", '{"slug": "p", "kind": "pairwise", "name": "\\udc00"}', content_type="application/json"
    )
    assert response.status_code == 400 and "$.name contains a lone surrogate" in response.json()["message"]


def test_a_correction_with_a_good_replacement_still_goes_through(correction_task):
    client, url, task, _project = correction_task
    text = task["responses"][0]["text"]
    body = {
        "client_request_id": "ok",
        "segments": [{"start": 0, "end": 2, "type": "object", "original": text[:2], "replacement": "é🙂"}],
    }
    assert client.post(url, body, format="json").status_code == 201


def test_an_impossible_snapshot_date_is_a_400_naming_it(researcher, api_client_for, pairwise_project):
    from annotation.models import DatasetSnapshot

    for date in ("2020-13-45", "2026-02-30T10:00:00"):
        response = api_client_for(researcher).post(
            f"/api/v1/projects/{pairwise_project.slug}/snapshots/", {"date_from": date}, format="json"
        )
        assert response.status_code == 400, response.content
        assert "date_from" in response.json()["extra"]["fields"]
    assert not DatasetSnapshot.objects.exists()


@pytest.mark.parametrize("item_ids", [[10**30], [-1], [0]])
def test_labeler_item_ids_out_of_range_are_a_400(item_ids, researcher, api_client_for, pairwise_project):
    from annotation.models import LabelerJob

    response = api_client_for(researcher).post(
        f"/api/v1/projects/{pairwise_project.slug}/labeler-jobs/start/",
        {"backend": "local", "model": "/models/labeler", "item_ids": item_ids},
        format="json",
    )
    assert response.status_code == 400, response.content
    assert "item_ids" in response.json()["extra"]["fields"]
    assert not LabelerJob.objects.exists()


@pytest.mark.parametrize(
    ("config", "field"), [({"batch_size": 2.5}, "batch_size"), ({"max_new_tokens": 10**30}, "max_new_tokens")]
)
def test_labeler_settings_of_the_wrong_type_or_size_are_a_400(
    config, field, researcher, api_client_for, pairwise_project
):
    from annotation.models import LabelerJob

    response = api_client_for(researcher).post(
        f"/api/v1/projects/{pairwise_project.slug}/labeler-jobs/start/",
        {"backend": "local", "model": "/models/labeler", "config": config},
        format="json",
    )
    assert response.status_code == 400, response.content
    assert response.json()["extra"]["field"] == field
    assert not LabelerJob.objects.exists()
