"""Issue 16, item 2: a model's name becomes a folder name (merging an adapter writes `<name>-merged` under
MODELS_DIR), so `../..` or an absolute name wrote model files anywhere. Names are now one slug-like path
segment at every entry (API, CLI, services), and every model folder is resolved under MODELS_DIR."""

import pytest

TRAVERSING_NAMES = ["../../escape", "/tmp/abs-model", "..", "a/../../b", ".hidden", "x" * 5000, "", "név\x00"]


@pytest.fixture
def models_dir(settings, tmp_path):
    settings.MODELS_DIR = str(tmp_path / "data" / "models")
    (tmp_path / "data" / "models").mkdir(parents=True)
    return tmp_path / "data" / "models"


@pytest.mark.parametrize("name", TRAVERSING_NAMES)
def test_registering_a_model_refuses_a_name_that_is_not_one_folder(name, admin_user, api_client_for, models_dir):
    from training.models import ModelArtifact

    response = api_client_for(admin_user).post(
        "/api/v1/models/", {"name": name, "location": "/models/some-model"}, format="json"
    )
    assert response.status_code == 400, response.content
    body = response.json()
    # The serializer names the field; a NUL is refused earlier, by the JSON parser, which names it too.
    assert "name" in body["extra"].get("fields", {}) or "$.name contains a NUL" in body["message"], body
    assert not ModelArtifact.objects.exists()


@pytest.mark.parametrize("name", TRAVERSING_NAMES)
def test_the_register_service_refuses_the_same_names(name, db):
    from loupe.errors import ApplicationError
    from training import services

    with pytest.raises(ApplicationError) as refused:
        services.model_artifact_register(name=name or "   ", location="/models/m")
    assert refused.value.extra.get("field", "name") == "name"


def test_good_names_register_and_name_their_folder_under_the_models_folder(admin_user, api_client_for, models_dir):
    from training import services

    response = api_client_for(admin_user).post(
        "/api/v1/models/", {"name": "Qwen2-VL_2B.dpo-r1", "location": "/models/q"}, format="json"
    )
    assert response.status_code == 201, response.content
    assert services.model_dir(name="Qwen2-VL_2B.dpo-r1") == models_dir.resolve() / "Qwen2-VL_2B.dpo-r1"


def test_a_model_is_never_registered_under_a_path_and_rounds_name_their_base_after_its_folder(db, models_dir, tmp_path):
    """A path is no model name, wherever the registration comes from; rounds register a base folder under its
    last segment (unique), keeping the path as its location."""
    from loupe.errors import ApplicationError
    from training import services
    from training.rounds import rounds_base_resolve

    with pytest.raises(ApplicationError, match="cannot name a model"):
        services.model_artifact_register(name="/data/models/base", location="/data/models/base")
    folder = tmp_path / "my-base"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    artifact = rounds_base_resolve(reference=str(folder))
    assert (artifact.name, artifact.location) == ("my-base", str(folder))
    assert rounds_base_resolve(reference=str(folder)) == artifact  # found again by location, not registered twice
    with pytest.raises(ApplicationError, match="not a model folder|hub|registered"):
        rounds_base_resolve(reference="org/not-downloaded-model")


def _adapter(name: str):
    from training.models import ModelArtifact

    # Names that predate the check (or come from the admin's raw form) still reach the merge.
    return ModelArtifact.objects.create(name=name, location="/models/adapter", is_adapter=True, base_name="/m")


@pytest.mark.parametrize("name", ["../../escape", "/tmp/abs-model", "a/b"])
def test_merging_an_adapter_with_a_traversing_name_writes_nothing_anywhere(
    name, admin_user, api_client_for, models_dir, tmp_path, django_capture_on_commit_callbacks
):
    """The API refuses before queueing; the worker/CLI path refuses before merging (no folder made)."""
    from django.core.management import CommandError, call_command

    from training.models import ModelArtifact

    adapter = _adapter(name)
    with django_capture_on_commit_callbacks() as queued:
        response = api_client_for(admin_user).post(f"/api/v1/models/{adapter.pk}/merge/")
    assert response.status_code == 400 and response.json()["extra"]["field"] == "name"
    assert queued == [], "nothing queued"
    with pytest.raises(CommandError, match="cannot name a model"):
        call_command("merge_adapter", artifact=name)
    assert ModelArtifact.objects.count() == 1
    written = sorted(p for p in tmp_path.rglob("*") if p != models_dir and p.parent != tmp_path)
    assert written == [], written


def test_a_symlink_in_the_models_folder_cannot_redirect_a_merge(models_dir, tmp_path, db):
    from django.core.management import CommandError, call_command

    outside = tmp_path / "outside"
    outside.mkdir()
    (models_dir / "planted-merged").symlink_to(outside, target_is_directory=True)
    _adapter("planted")
    with pytest.raises(CommandError, match="outside"):
        call_command("merge_adapter", artifact="planted")
    assert list(outside.iterdir()) == []


def test_a_folder_reference_gets_a_valid_unique_model_name(db):
    """What rounds (and anyone registering a folder by itself) can name a model after."""
    from training import services

    assert services.model_name_from_reference(reference="/data/models/tiny-vlm/") == "tiny-vlm"
    assert services.model_name_from_reference(reference="Qwen/Qwen2-VL-2B") == "Qwen-Qwen2-VL-2B"
    assert services.model_name_from_reference(reference="../../..") == "model"
    services.model_artifact_register(name="tiny-vlm", location="/a/tiny-vlm")
    assert services.model_name_from_reference(reference="/b/tiny-vlm") == "tiny-vlm-2"
