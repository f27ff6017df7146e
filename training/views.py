"""Pages for admins: start and watch training runs (the run page polls the REST API), and the models list."""

import json
from pathlib import Path
from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from annotation.models import DatasetSnapshot
from annotation.permissions import access_snapshot
from loupe.errors import ApplicationError
from training import selectors, services
from training.models import ArtifactKind
from training.permissions import access_model_artifact, access_training, access_training_run


def _example_model_folder() -> str:
    """A model folder that exists, for the base-model field's placeholder: the demo's tiny LM when it is there,
    else the first folder with a config.json under MODELS_DIR; empty when there is none."""
    root = Path(settings.MODELS_DIR)
    preferred = root / "tiny-lm"
    if (preferred / "config.json").is_file():
        return str(preferred)
    found = sorted(path.parent for path in root.glob("*/config.json")) if root.is_dir() else []
    return str(found[0]) if found else ""


def _run_form_context(form: dict[str, str], error: str = "") -> dict:
    return {
        "example_model_folder": _example_model_folder(),
        "runs": selectors.training_run_list()[:200],
        "methods": selectors.training_methods(),
        "snapshots": DatasetSnapshot.objects.select_related("project").order_by("-id")[:200],
        "artifacts": selectors.model_artifact_list().filter(is_adapter=False)[:200],
        "form": form,
        "error": error,
    }


@login_required
def run_list_page(request: HttpRequest) -> HttpResponse:
    """The runs, newest first, and a form that starts one (a bad config is refused with its message)."""
    access_training(user=request.user)
    services.training_runs_reap_dead()
    if request.method != "POST":
        return render(request, "training/run_list.html", _run_form_context({"method": "dpo", "config": "{}"}))
    form = {
        key: request.POST.get(key, "").strip()
        for key in ("method", "snapshot", "base_artifact", "base_model", "config")
    }
    try:
        config = json.loads(form["config"] or "{}")
    except json.JSONDecodeError as error:
        message = f"The config is not valid JSON: {error.msg} (line {error.lineno}, column {error.colno})."
        return render(request, "training/run_list.html", _run_form_context(form, message), status=400)
    try:
        if not form["snapshot"].isdigit():
            raise ApplicationError("Choose a snapshot to train on.")
        snapshot = access_snapshot(user=request.user, snapshot_id=int(form["snapshot"]))
        base_artifact = None
        if form["base_artifact"].isdigit():
            base_artifact = access_model_artifact(user=request.user, artifact_id=int(form["base_artifact"]))
        run = services.training_run_create(
            method=form["method"],
            snapshot=snapshot,
            base_model=form["base_model"],
            base_artifact=base_artifact,
            config=config,
            created_by=request.user,
        )
    except (ApplicationError, Http404) as error:
        message = error.message if isinstance(error, ApplicationError) else str(error)
        return render(request, "training/run_list.html", _run_form_context(form, message), status=400)
    return redirect("run", run_id=run.pk)


@login_required
def run_page(request: HttpRequest, run_id: int) -> HttpResponse:
    """A run's status, curves and log (polled by run.js); a failed run's cause above the log; Resume names the
    checkpoint it continues from, or says the run starts again when there is none."""
    access_training(user=request.user)
    services.training_runs_reap_dead()
    run = access_training_run(user=request.user, run_id=run_id)
    return render(
        request,
        "training/run.html",
        {
            "run": run,
            "artifacts": run.artifacts.all(),
            "failure_cause": selectors.training_run_failure_cause(run=run),
            "last_checkpoint": selectors.training_run_last_checkpoint(run=run),
        },
    )


@login_required
def model_list_page(request: HttpRequest) -> HttpResponse:
    """The models Loupe knows, with their lineage (base, snapshot, run) and a merge button for adapters."""
    access_training(user=request.user)
    return render(
        request,
        "training/model_list.html",
        {
            "artifacts": selectors.model_artifact_list()[:500],
            "kinds": ArtifactKind,
            "message": request.GET.get("m", ""),
        },
    )


@login_required
@require_POST
def model_merge_action(request: HttpRequest, artifact_id: int) -> HttpResponse:
    artifact = access_model_artifact(user=request.user, artifact_id=artifact_id)
    try:
        merged_name = services.model_artifact_merge(artifact=artifact)
        message = f"Merging {artifact.name} into {merged_name} on a training worker."
    except ApplicationError as error:
        message = error.message
    return redirect(f"{reverse('models')}?{urlencode({'m': message})}")
