"""The training pages in a real browser: the run form explains each method and refuses a bad config; the run
page draws its curves with plotly, shows the ETA and the log, and its Cancel and Resume buttons work."""

import datetime as dt

import pytest
from django.utils import timezone

from training.models import RunMetric, RunStatus, TrainingRun

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_run_page_draws_curves_and_cancels(page, login, live_server, admin_user, pairs_snapshot, screenshot_dir):
    """A running DPO run's loss, reward and accuracy curves are drawn (no KL chart: DPO logs none), with the ETA
    and the log; Cancel asks the run to stop."""
    now = timezone.now()
    run = TrainingRun.objects.create(
        method="dpo", base_model="/models/tiny", snapshot=pairs_snapshot, status=RunStatus.RUNNING, step=4,
        max_steps=20, started_at=now - dt.timedelta(minutes=1), heartbeat_at=now, log="step 4/20: loss=0.61\n",
    )  # fmt: skip
    for step in range(1, 5):
        values = {
            "loss": 0.7 - 0.03 * step,
            "rewards/chosen": 0.01 * step,
            "rewards/rejected": -0.01 * step,
            "rewards/margins": 0.02 * step,
            "rewards/accuracies": 0.5 + 0.1 * step,
            "tokens_per_second": 1500.0,
        }
        metric = RunMetric.objects.create(run=run, step=step, values=values)
        RunMetric.objects.filter(pk=metric.pk).update(logged_at=now - dt.timedelta(seconds=10 - 2 * step))

    login(page, admin_user)
    page.goto(f"{live_server.url}/runs/{run.pk}/")
    page.wait_for_selector("#chart-loss .main-svg")
    assert page.locator("#chart-loss .scatterlayer .trace").count() == 1
    assert page.locator("#chart-rewards .scatterlayer .trace").count() == 3
    assert page.locator("#chart-accuracy .scatterlayer .trace").count() == 1
    assert page.is_hidden("#chart-kl")
    assert "left" in page.inner_text("#run-eta") and "1500 tokens/s" in page.inner_text("#run-throughput")
    assert "step 4/20: loss=0.61" in page.inner_text("#run-log")
    page.screenshot(path=str(screenshot_dir / "training-run-page.png"), full_page=True)

    page.click("#run-cancel")
    page.wait_for_selector("#run-status:has-text('stopping')")
    run.refresh_from_db()
    assert run.cancel_requested and run.status == RunStatus.RUNNING


def test_a_failed_run_offers_resume(page, login, live_server, admin_user, pairs_snapshot):
    """A failed run shows Resume and no Cancel; Resume queues it again."""
    run = TrainingRun.objects.create(
        method="dpo", base_model="/models/tiny", snapshot=pairs_snapshot, status=RunStatus.FAILED, log="boom\n"
    )
    login(page, admin_user)
    page.goto(f"{live_server.url}/runs/{run.pk}/")
    assert page.is_hidden("#run-cancel") and page.is_visible("#run-resume")
    page.click("#run-resume")
    page.wait_for_selector("#run-status:has-text('queued')")
    run.refresh_from_db()
    assert run.status == RunStatus.QUEUED


def test_the_run_form_shows_settings_and_refuses_a_bad_config(page, login, live_server, admin_user, pairs_snapshot):
    """Choosing PPO lists its settings with help; its defaults fill the config box; without a reward source the
    form comes back with the reason; with one, the new run's page opens."""
    login(page, admin_user)
    page.goto(f"{live_server.url}/runs/")
    page.select_option("#run-method", "ppo")
    assert "PPO" in page.inner_text("#method-description")
    page.click("#new-run summary")
    assert "target_kl" in page.inner_text("#method-settings")
    page.click("#fill-defaults")
    assert '"target_kl": 6' in page.input_value("#run-config")
    page.select_option("#run-form [name=snapshot]", str(pairs_snapshot.pk))
    page.fill("#run-form [name=base_model]", "/models/tiny")
    page.click("#run-form button[type=submit]")
    assert "exactly one of reward_model" in page.inner_text("#run-form-error")
    assert TrainingRun.objects.count() == 0

    page.fill("#run-config", '{"reward_function": "tests.training.scorers:word_count", "max_steps": 5}')
    page.click("#run-form button[type=submit]")
    page.wait_for_url(f"{live_server.url}/runs/*/")
    run = TrainingRun.objects.get()
    assert run.method == "ppo" and run.max_steps == 5 and run.config["target_kl"] == 6.0
