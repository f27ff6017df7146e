"""Pages for admins: the leaderboard (models x benchmarks with lineage and plots) and a benchmark run's page
with its summary and browsable examples (with the image, for POPE)."""

import json

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from evaluation import selectors, services
from evaluation.models import Benchmark
from evaluation.permissions import access_benchmark_run, access_benchmarks
from loupe.errors import ApplicationError
from training.models import ArtifactKind, ModelArtifact
from training.permissions import access_model_artifact

EXAMPLES_PER_PAGE = 50


def _leaderboard_context(form: dict[str, str], error: str = "") -> dict:
    board = selectors.leaderboard()
    for row in board["rows"]:  # cells in the benchmarks' order, for the template
        row["cells"] = [
            {
                "benchmark": b["name"],
                "run": row["results"][b["name"]]["run"],
                "headline": row["results"][b["name"]]["metrics"].get(b["headline"]),
            }
            if b["name"] in row["results"]
            else None
            for b in board["benchmarks"]
        ]
    return {
        "board": board,
        "runs": selectors.benchmark_run_list()[:50],
        "benchmarks": Benchmark.choices,
        "artifacts": ModelArtifact.objects.filter(kind=ArtifactKind.POLICY).order_by("name")[:500],
        "form": form,
        "error": error,
    }


@login_required
def leaderboard_page(request: HttpRequest) -> HttpResponse:
    """The leaderboard, recent runs, and a form that starts a run (a bad config is refused with its message)."""
    access_benchmarks(user=request.user)
    services.benchmark_runs_reap_dead()
    if request.method != "POST":
        form = {"benchmark": "pope", "config": '{"shapes": {"n_images": 20, "seed": 0}}'}
        return render(request, "evaluation/leaderboard.html", _leaderboard_context(form))
    form = {key: request.POST.get(key, "").strip() for key in ("benchmark", "model", "model_path", "config")}
    try:
        config = json.loads(form["config"] or "{}")
        if not isinstance(config, dict):
            raise ApplicationError("The config must be a JSON object.")
        model = access_model_artifact(user=request.user, artifact_id=int(form["model"])) if form["model"] else None
        run = services.benchmark_run_start(
            benchmark=form["benchmark"],
            config=config,
            model=model,
            model_path=form["model_path"],
            created_by=request.user,
        )
    except json.JSONDecodeError as error:
        message = f"The config is not valid JSON: {error.msg} (line {error.lineno}, column {error.colno})."
        return render(request, "evaluation/leaderboard.html", _leaderboard_context(form, message), status=400)
    except (ApplicationError, Http404, ValueError) as error:
        message = error.message if isinstance(error, ApplicationError) else str(error)
        return render(request, "evaluation/leaderboard.html", _leaderboard_context(form, message), status=400)
    return redirect("benchmark-run", run_id=run.pk)


@login_required
def benchmark_run_page(request: HttpRequest, run_id: int) -> HttpResponse:
    access_benchmarks(user=request.user)
    services.benchmark_runs_reap_dead()
    run = access_benchmark_run(user=request.user, run_id=run_id)
    only = request.GET.get("only", "")
    hallucinated = {"hallucinated": True, "correct": False}.get(only)
    examples = selectors.benchmark_example_list(run=run, hallucinated=hallucinated)
    page = Paginator(examples, EXAMPLES_PER_PAGE).get_page(request.GET.get("page"))
    if run.benchmark == "captions":  # metric names hold hyphens, which templates cannot look up
        for example in page:
            example.scores = " · ".join(f"{name} {value:.3f}" for name, value in example.detail.items())
    return render(
        request,
        "evaluation/run.html",
        {
            "run": run,
            "summary_rows": selectors.summary_rows(run=run),
            "page": page,
            "only": only,
            "with_images": selectors.benchmark_image_dir(run=run) is not None,
        },
    )


@login_required
def benchmark_example_image(request: HttpRequest, run_id: int, index: int) -> FileResponse:
    run = access_benchmark_run(user=request.user, run_id=run_id)
    path = selectors.benchmark_example_image_path(run=run, index=index)
    if path is None:
        raise Http404("No image for this example.")
    return FileResponse(path.open("rb"))
