"""The training pages in a real browser: the run form explains each method and refuses a bad config; the run
page draws its curves with plotly, shows the ETA and the log, a failed run's cause in one line, and its Cancel,
Resume (only with a checkpoint) and Start again buttons work."""

import datetime as dt

import pytest
from django.utils import timezone

from training.models import JobStatus, RunMetric, TrainingRun

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_run_page_draws_curves_and_cancels(page, login, live_server, admin_user, pairs_snapshot, screenshot_dir):
    """A running DPO run's loss, reward and accuracy curves are drawn (no KL chart: DPO logs none), with the ETA
    and the log; Cancel asks the run to stop."""
    now = timezone.now()
    run = TrainingRun.objects.create(
        method="dpo", base_model="/models/tiny", snapshot=pairs_snapshot, status=JobStatus.RUNNING, step=4,
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
    assert "Cancel requested" in page.inner_text("#run-message")
    run.refresh_from_db()
    assert run.cancel_requested and run.status == JobStatus.RUNNING

    # The worker dies before the next step: the page's next poll shows the failure, and the "Cancel requested"
    # note about the running run goes with it.
    TrainingRun.objects.filter(pk=run.pk).update(
        status=JobStatus.FAILED, log=run.log + "Traceback (most recent call last):\n[loupe] failed: MemoryError\n"
    )
    page.wait_for_selector("#run-cause:has-text('MemoryError')")
    assert page.inner_text("#run-message") == ""
    assert page.is_hidden("#run-resume") and page.is_visible("#run-restart")


TRACEBACK = (
    "[loupe] starting dpo on /data/models/llava\nTraceback (most recent call last):\n"
    '  File "/work/main/training/services.py", line 402, in training_run_execute\n'
    "OSError: /data/models/llava does not appear to have a file named config.json.\n"
    "[loupe] failed: OSError: /data/models/llava does not appear to have a file named config.json.\n"
)


def test_a_failed_run_without_a_checkpoint_shows_its_cause_and_starts_again(
    page, login, live_server, admin_user, pairs_snapshot, tmp_path, screenshot_dir
):
    """The cause is one line above the log, not the traceback; there is no "Resume from the last checkpoint",
    only "Start again from the beginning" with the reason; it queues the run and the cause goes away."""
    run = TrainingRun.objects.create(
        method="dpo", base_model="/data/models/llava", snapshot=pairs_snapshot, status=JobStatus.FAILED,
        log=TRACEBACK, output_dir=str(tmp_path / "run"),
    )  # fmt: skip
    login(page, admin_user)
    page.goto(f"{live_server.url}/runs/{run.pk}/")
    page.wait_for_selector("#run-log:has-text('Traceback')")
    cause = page.inner_text("#run-cause")
    assert "OSError: /data/models/llava does not appear to have a file named config.json." in cause
    assert "Traceback" not in cause and "\n" not in cause.strip()
    assert page.locator("#run-cause").bounding_box()["y"] < page.locator("#run-log").bounding_box()["y"]
    assert page.is_hidden("#run-cancel") and page.is_hidden("#run-resume") and page.is_visible("#run-restart")
    assert "No checkpoint was saved" in page.inner_text(".run-actions")
    assert "checkpoint" not in page.inner_text("#run-restart")
    page.screenshot(path=str(screenshot_dir / "training-run-failed-no-checkpoint.png"), full_page=True)

    page.click("#run-restart")
    page.wait_for_selector("#run-status:has-text('queued')")
    assert "starts from the beginning" in page.inner_text("#run-message") and page.is_hidden("#run-cause")
    run.refresh_from_db()
    assert run.status == JobStatus.QUEUED and run.log.endswith("from the beginning (no checkpoint was saved)\n")


def test_a_failed_run_with_a_checkpoint_offers_resume_from_it(
    page, login, live_server, admin_user, pairs_snapshot, tmp_path, screenshot_dir
):
    """With checkpoints saved, Resume names the latest and queues the run; no "Start again"."""
    for name in ("checkpoint-10", "checkpoint-20"):
        folder = tmp_path / "run" / "model" / "checkpoints" / name
        folder.mkdir(parents=True)
        (folder / "trainer_state.json").write_text("{}")  # the Trainer's last write: the checkpoint is whole
    run = TrainingRun.objects.create(
        method="dpo", base_model="/data/models/llava", snapshot=pairs_snapshot, status=JobStatus.FAILED, step=23,
        max_steps=100, log=TRACEBACK, output_dir=str(tmp_path / "run"),
    )  # fmt: skip
    login(page, admin_user)
    page.goto(f"{live_server.url}/runs/{run.pk}/")
    page.wait_for_selector("#run-log:has-text('Traceback')")
    assert page.inner_text("#run-resume") == "Resume from the last checkpoint (checkpoint-20)"
    assert page.is_hidden("#run-restart") and page.is_visible("#run-cause")
    page.screenshot(path=str(screenshot_dir / "training-run-failed-checkpoint.png"), full_page=True)
    page.click("#run-resume")
    page.wait_for_selector("#run-status:has-text('queued')")
    assert "continues from checkpoint-20" in page.inner_text("#run-message")
    run.refresh_from_db()
    assert run.status == JobStatus.QUEUED


def test_the_run_form_shows_settings_and_refuses_a_bad_config(
    page, login, live_server, admin_user, pairs_snapshot, model_folder, screenshot_dir
):
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
    page.fill("#run-form [name=base_model]", model_folder)
    page.click("#run-form button[type=submit]")
    assert "exactly one of reward_model" in page.inner_text("#run-form-error")
    assert TrainingRun.objects.count() == 0
    page.fill("#run-form [name=base_model]", "Qwen/Qwen2-VL-2B-Instruct")  # a hub name: refused, offline
    page.fill("#run-config", '{"reward_function": "tests.training.scorers:word_count", "max_steps": 5}')
    page.click("#run-form button[type=submit]")
    assert "hub names are refused because training runs offline" in page.inner_text("#run-form-error")
    page.screenshot(path=str(screenshot_dir / "training-run-form-hub-name.png"), full_page=True)
    page.fill("#run-form [name=base_model]", model_folder)

    page.fill("#run-config", '{"reward_function": "tests.training.scorers:word_count", "max_steps": 5}')
    page.click("#run-form button[type=submit]")
    page.wait_for_url(f"{live_server.url}/runs/*/")
    run = TrainingRun.objects.get()
    assert run.method == "ppo" and run.max_steps == 5 and run.config["target_kl"] == 6.0
