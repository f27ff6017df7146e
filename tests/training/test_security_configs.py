"""Issue 16, items 4 and 5 for training configs: `max_steps: 2.5` was accepted and failed in the worker;
numbers like 1e300 or 1e400 and wrong types reach a run. Each is now a 400 naming the setting, nothing queued."""

import pytest

from training.models import TrainingRun


def _post(client, snapshot, config, *, method="dpo", raw: str | None = None, base_model: str = "/models/tiny"):
    if raw is not None:
        body = '{"method": "M", "snapshot": S, "base_model": "/models/tiny", "config": RAW}'
        body = body.replace("M", method).replace("S", str(snapshot.pk)).replace("RAW", raw)
        return client.post("/api/v1/training-runs/", body, content_type="application/json")
    body = {"method": method, "snapshot": snapshot.pk, "base_model": base_model, "config": config}
    return client.post("/api/v1/training-runs/", body, format="json")


@pytest.mark.parametrize(
    ("config", "field", "message"),
    [
        ({"max_steps": 2.5}, "max_steps", "max_steps must be a whole number, not 2.5"),
        ({"max_steps": "20"}, "max_steps", "max_steps must be a whole number"),
        ({"max_steps": True}, "max_steps", "max_steps must be a whole number"),
        ({"max_steps": 10**12}, "max_steps", "max_steps must be at most 2147483647"),
        ({"max_steps": -3}, "max_steps", "max_steps must be at least 1"),
        ({"learning_rate": 1e300}, "learning_rate", "learning_rate must be a finite number"),
        ({"beta": "0.1"}, "beta", "beta must be a number"),
        ({"use_lora": "yes"}, "use_lora", "use_lora must be true or false"),
        ({"lora_target_modules": ["q_proj", 3]}, "lora_target_modules", "must be a list of texts"),
        ({"lr_scheduler_type": "lin\x00ear"}, None, "contains a NUL character"),
    ],
)
def test_a_config_value_of_the_wrong_type_or_size_is_a_400_naming_it(
    config, field, message, admin_user, api_client_for, pairs_snapshot, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as queued:
        response = _post(api_client_for(admin_user), pairs_snapshot, config)
    assert response.status_code == 400, response.content
    assert message in response.json()["message"]
    if field is not None:
        assert response.json()["extra"]["field"] == field
    assert TrainingRun.objects.count() == 0 and queued == []


@pytest.mark.parametrize("raw", ['{"max_steps": 1e400}', '{"learning_rate": Infinity}', '{"beta": NaN}'])
def test_numbers_json_cannot_hold_are_a_400(raw, admin_user, api_client_for, pairs_snapshot):
    response = _post(api_client_for(admin_user), pairs_snapshot, None, raw=raw)
    assert response.status_code == 400, response.content
    assert "JSON parse error" in response.json()["message"]
    assert TrainingRun.objects.count() == 0


def test_the_cli_refuses_the_same_config(pairs_snapshot):
    from django.core.management import CommandError, call_command

    with pytest.raises(CommandError, match="max_steps must be a whole number, not 2.5"):
        call_command("train", method="dpo", snapshot=pairs_snapshot.pk, base_model="/m", config='{"max_steps": 2.5}')
    assert TrainingRun.objects.count() == 0


def test_a_good_config_still_goes_through_with_ints_for_floats(
    admin_user, api_client_for, pairs_snapshot, django_capture_on_commit_callbacks, model_folder
):
    with django_capture_on_commit_callbacks() as queued:
        config = {"max_steps": 3, "beta": 1, "learning_rate": 1e-5}
        response = _post(api_client_for(admin_user), pairs_snapshot, config, base_model=model_folder)
    assert response.status_code == 201, response.content
    assert response.json()["max_steps"] == 3 and len(queued) == 1
