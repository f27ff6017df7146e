"""The OpenAPI schema (`/api/v1/schema/`): generated without one warning, every operation described, every
body named after its own serializer, and each POST's request body exactly the fields its view reads."""

import re
from pathlib import Path

import pytest
import yaml
from django.core.management import call_command
from django.urls import resolve
from rest_framework import serializers

from annotation.api.datasets import ExportJobInputSerializer, ImportInputSerializer

# POST endpoints whose body is a module-level serializer (shared by two views) rather than the view's own
# nested `InputSerializer`.
SHARED_INPUTS: dict[str, type[serializers.Serializer]] = {
    "/api/v1/projects/{slug}/imports/": ImportInputSerializer,
    "/api/v1/projects/{slug}/import-jobs/": ImportInputSerializer,
    "/api/v1/snapshots/{snapshot_id}/export-jobs/": ExportJobInputSerializer,
}


@pytest.fixture(scope="module")
def schema(tmp_path_factory) -> dict:
    """The schema as `manage.py spectacular --validate --fail-on-warn` writes it (a warning fails it)."""
    path: Path = tmp_path_factory.mktemp("schema") / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(path))
    return yaml.safe_load(path.read_text())


def _view_class(path: str) -> type:
    concrete = re.sub(r"\{[a-z_]+_id\}", "1", path.replace("{slug}", "demo"))
    return resolve(concrete).func.view_class


def _body_schema(schema: dict, operation: dict) -> dict:
    content = operation["requestBody"]["content"]
    media = content.get("application/json") or content["multipart/form-data"]
    name = media["schema"]["$ref"].rsplit("/", 1)[-1]
    return schema["components"]["schemas"][name]


def _posts(schema: dict) -> list[tuple[str, dict]]:
    return [(path, ops["post"]) for path, ops in schema["paths"].items() if "post" in ops]


def test_every_operation_has_a_description_and_every_answer_a_body_or_a_reason(schema):
    """Swagger shows what each operation does; 2xx answers other than 204 say what they return."""
    undescribed, bodiless = [], []
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            if not operation.get("description", "").strip():
                undescribed.append(f"{method.upper()} {path}")
            for code, answer in operation["responses"].items():
                if code.startswith("2") and code != "204" and "content" not in answer:
                    bodiless.append(f"{method.upper()} {path} {code}")
    assert undescribed == []
    assert bodiless == []


def test_each_post_body_has_exactly_the_fields_its_serializer_takes(schema):
    """For every POST (annotation, training, evaluation, rounds, labeler), the request body's properties and
    required fields are those of the serializer the view validates with; views without one take no body."""
    checked = []
    for path, operation in _posts(schema):
        view = _view_class(path)
        serializer_class = SHARED_INPUTS.get(path) or getattr(view, "InputSerializer", None)
        if serializer_class is None:
            assert "requestBody" not in operation, f"POST {path} documents a body its view does not read"
            continue
        fields = serializer_class().fields
        body = _body_schema(schema, operation)
        assert set(body["properties"]) == set(fields), f"POST {path}"
        required = {name for name, field in fields.items() if field.required}
        assert set(body.get("required", [])) == required, f"POST {path}"
        checked.append(path)
    assert {
        "/api/v1/projects/",
        "/api/v1/projects/{slug}/members/",
        "/api/v1/projects/{slug}/tasks/{assignment_id}/submit/",
        "/api/v1/projects/{slug}/imports/",
        "/api/v1/projects/{slug}/import-jobs/",
        "/api/v1/projects/{slug}/snapshots/",
        "/api/v1/snapshots/{snapshot_id}/export-jobs/",
        "/api/v1/projects/{slug}/labeler-jobs/start/",
        "/api/v1/training-runs/",
        "/api/v1/models/",
        "/api/v1/rounds/",
        "/api/v1/benchmark-runs/",
    } <= set(checked)


def test_request_bodies_are_distinct_components_named_after_their_operation(schema):
    """No two views share a request component unless they read the same serializer (the two imports)."""
    owners: dict[str, set] = {}
    for path, operation in _posts(schema):
        if "requestBody" in operation:
            content = operation["requestBody"]["content"]
            media = content.get("application/json") or content["multipart/form-data"]
            owners.setdefault(media["schema"]["$ref"], set()).add(SHARED_INPUTS.get(path) or _view_class(path))
    assert all(len(views) == 1 for views in owners.values()), owners
    names = {ref.rsplit("/", 1)[-1] for ref in owners}
    assert "InputRequest" not in names
    assert {"TaskSubmitInputRequest", "TrainingRunCreateInputRequest", "ModelArtifactRegisterInputRequest"} <= names


def test_submit_documents_its_required_request_id_and_its_answer(schema):
    """The submit body requires `client_request_id`; its 201 is the stored answer, not "No response body"."""
    operation = schema["paths"]["/api/v1/projects/{slug}/tasks/{assignment_id}/submit/"]["post"]
    assert _body_schema(schema, operation)["required"] == ["client_request_id"]
    answer = operation["responses"]["201"]["content"]["application/json"]["schema"]["$ref"]
    properties = schema["components"]["schemas"][answer.rsplit("/", 1)[-1]]["properties"]
    assert {"id", "assignment_id", "choice", "segments", "level", "order"} <= set(properties)
