"""The datasets page of a project: import files in every format, freeze snapshots, pick an export format
and download it. Managers only. The page is rendered with the current snapshots and jobs; its script
(`loupe/datasets.js`) starts jobs through the REST API and follows their progress.

The freeze form offers only what fits the project: SFT and ratings snapshots, and the [GOOD] threshold, come
from ratings (rating projects); agreement is a vote share (pairwise projects); the pair sources are the
project's own kind and the AI labeler's."""

from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from annotation import services
from annotation.api.datasets import access_data_job
from annotation.models import PairSource, ProjectKind
from annotation.permissions import access_project_for_management
from annotation.services.imports import FORMAT_PROJECT_KINDS
from annotation.services.preference_pairs import rating_scale
from annotation.services.snapshots import split_by_default
from loupe.errors import ApplicationError

IMPORT_TITLES = {
    "loupe-jsonl": "Loupe JSONL (items and responses)",
    "caption-contest": "Caption-contest CSV (with the cartoon image)",
    "rlaif-v": "RLAIF-V Parquet",
    "rlhf-v": "RLHF-V Parquet (or JSON)",
    "label-studio": "Label Studio JSON export",
}

# What "margin" measures in each kind of project's pairs (AI pairs: the labeler's score difference).
MARGIN_HELP = {
    ProjectKind.PAIRWISE: "the chosen answer's win strengths minus the other's, per vote (slightly 1, clearly 2)",
    ProjectKind.RATING: "the chosen caption's mean rating minus the rejected one's",
    ProjectKind.RANKING: "how many places apart the two answers were ranked (1 = neighbours)",
    ProjectKind.CORRECTION: "always 1 for a corrected answer against the original",
}


@login_required
def datasets_page(request: HttpRequest, slug: str) -> HttpResponse:
    project = access_project_for_management(user=request.user, project_slug=slug)
    snapshots = [
        {
            "snapshot": snapshot,
            "kind": services.snapshot_kind(snapshot),
            "formats": [f for f in services.EXPORT_FORMATS.values() if services.snapshot_kind(snapshot) in f.kinds],
        }
        for snapshot in project.snapshots.order_by("-id")[:50]
    ]
    services.data_jobs_reap_dead()
    jobs = project.data_jobs.select_related("project").order_by("-id")[:20]
    job_rows = [{"job": job, "progress": services.data_job_progress(job=job)} for job in jobs]
    rated = project.kind == ProjectKind.RATING
    return render(
        request,
        "annotation/datasets.html",
        {
            "project": project,
            "snapshots": snapshots,
            "jobs": job_rows,
            "pair_count": project.pairs.count(),
            "sources": [
                (value, title) for value, title in PairSource.choices if value in (project.kind, PairSource.AI)
            ],
            "snapshot_kinds": [kind for kind in services.SNAPSHOT_KINDS if rated or kind == "pairs"],
            "show_agreement": project.kind == ProjectKind.PAIRWISE,
            "margin_help": MARGIN_HELP.get(project.kind, ""),
            "item_count": project.items.count(),
            # Only the formats whose items can be this project's tasks (the import refuses the others).
            "import_formats": [
                (name, IMPORT_TITLES.get(name, name))
                for name in services.IMPORT_FORMATS
                if project.kind in FORMAT_PROJECT_KINDS.get(name, (project.kind,))
            ],
            "scale": rating_scale(project),
            "split_by_default": split_by_default(project),
        },
    )


@login_required
def export_download(request: HttpRequest, slug: str, job_id: int) -> HttpResponse:
    """A finished export's zip, saved under a name that says what it holds."""
    job = access_data_job(user=request.user, job_id=job_id)
    if job.project.slug != slug:
        raise Http404("No such job in this project.")
    try:
        path = services.data_job_result_file(job=job)
    except ApplicationError as error:  # not an export, not finished, or its file is gone: say which
        return HttpResponse(error.message, status=400, content_type="text/plain; charset=utf-8")
    return FileResponse(path.open("rb"), as_attachment=True, filename=services.data_job_download_name(job=job))
