"""The datasets page of a project: import files in every format, freeze snapshots, pick an export format
and download it. Managers only. The page is rendered with the current snapshots and jobs; its script
(`loupe/datasets.js`) starts jobs through the REST API and follows their progress."""

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from annotation import services
from annotation.models import PairSource
from annotation.permissions import access_project_for_management
from annotation.services.imports import FORMAT_PROJECT_KINDS
from annotation.services.preference_pairs import rating_scale
from annotation.services.snapshots import split_by_default

IMPORT_TITLES = {
    "loupe-jsonl": "Loupe JSONL (items and responses)",
    "caption-contest": "Caption-contest CSV (with the cartoon image)",
    "rlaif-v": "RLAIF-V Parquet",
    "rlhf-v": "RLHF-V Parquet (or JSON)",
    "label-studio": "Label Studio JSON export",
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
    jobs = project.data_jobs.select_related("project").order_by("-id")[:20]
    job_rows = [{"job": job, "progress": services.data_job_progress(job=job)} for job in jobs]
    return render(
        request,
        "annotation/datasets.html",
        {
            "project": project,
            "snapshots": snapshots,
            "jobs": job_rows,
            "pair_count": project.pairs.count(),
            "sources": PairSource.choices,
            "snapshot_kinds": services.SNAPSHOT_KINDS,
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
