"""Issue 16, item 3: `reward_function` imported any dotted path, in the web process when a config was checked
(loading torch into the web process) and in the worker (`os:system` ran). Now only registered sources count: reward
models, the labeler ("labeler:<model>") and functions the admin lists in LOUPE_REWARD_FUNCTIONS; checking
imports nothing, and the worker imports only what the registry lists."""

import subprocess
import sys

import pytest

from tests.conftest import REPO
from training.models import TrainingRun


@pytest.mark.parametrize("reward_function", ["os:system", "subprocess:run", "builtins:exec", "torch.nn:Module"])
def test_an_unregistered_reward_function_is_refused_with_a_400_and_nothing_runs(
    reward_function, admin_user, api_client_for, pairs_snapshot, django_capture_on_commit_callbacks, monkeypatch
):
    import os

    ran = []
    monkeypatch.setattr(os, "system", lambda command: ran.append(command) or 0)
    with django_capture_on_commit_callbacks() as queued:
        response = api_client_for(admin_user).post(
            "/api/v1/training-runs/",
            {
                "method": "grpo",
                "snapshot": pairs_snapshot.pk,
                "base_model": "/models/tiny",
                "config": {"reward_function": reward_function},
            },
            format="json",
        )
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["extra"]["field"] == "reward_function"
    assert "registered" in body["message"] and "LOUPE_REWARD_FUNCTIONS" in body["message"]
    assert TrainingRun.objects.count() == 0 and queued == [] and ran == []


def test_registered_functions_are_accepted_by_name_or_by_their_value(
    admin_user, api_client_for, pairs_snapshot, django_capture_on_commit_callbacks, model_folder
):
    api = api_client_for(admin_user)
    for reward_function in ("word_count", "tests.training.scorers:word_count"):
        with django_capture_on_commit_callbacks(execute=False):
            response = api.post(
                "/api/v1/training-runs/",
                {
                    "method": "best_of_n",
                    "snapshot": pairs_snapshot.pk,
                    "base_model": model_folder,
                    "config": {"reward_function": reward_function},
                },
                format="json",
            )
        assert response.status_code == 201, response.content
        assert response.json()["config"]["reward_function"] == reward_function


def test_the_registry_is_the_admins_setting(settings):
    from training.methods.configs import GRPOConfig

    settings.LOUPE_REWARD_FUNCTIONS = {"red": "tests.training.scorers:mentions_red"}
    assert GRPOConfig(reward_function="red").reward_function == "red"
    with pytest.raises(ValueError, match="cannot be found among the registered reward functions \\(red\\)"):
        GRPOConfig(reward_function="word_count")


def test_checking_a_config_imports_nothing_it_names():
    """In a fresh web-like process, checking configs that name torch or a registered scorer's module loads
    neither (the web process must stay torch-free; a check must not run a module's import-time code)."""
    code = (
        "import os, sys, django\n"
        "os.environ['DJANGO_SETTINGS_MODULE'] = 'loupe.settings.test'\n"
        "django.setup()\n"
        "from training.services import method_config_build\n"
        "from loupe.errors import ApplicationError\n"
        "method_config_build(method='grpo', config={'reward_function': 'word_count'})\n"
        "method_config_build(method='ppo', config={'reward_function': 'tests.training.scorers:recording'})\n"
        "try:\n"
        "    method_config_build(method='grpo', config={'reward_function': 'torch.nn.functional:relu'})\n"
        "except ApplicationError as error:\n"
        "    print('refused', error.extra['field'])\n"
        "print(sorted(m for m in ('torch', 'tests.training.scorers', 'tests.training') if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:2] == ["refused reward_function", "[]"], result.stdout


def test_the_worker_resolves_only_registered_names(monkeypatch, settings):
    """A config queued before the check (or after the admin removed a function) still cannot make the worker
    import or call anything unregistered."""
    import os

    from training.rewards import load_reward_scorer

    ran = []
    monkeypatch.setattr(os, "system", lambda command: ran.append(command) or 0)
    with pytest.raises(ValueError, match="not a registered reward function"):
        load_reward_scorer(reward_function="os:system")
    scorer = load_reward_scorer(reward_function="word_count")
    assert scorer(prompts=["p", "p"], completions=["one two", "one"], images=None) == [0.5, 0.25]
    settings.LOUPE_REWARD_FUNCTIONS = {}
    with pytest.raises(ValueError, match="not a registered reward function"):
        load_reward_scorer(reward_function="word_count")
    assert ran == []
