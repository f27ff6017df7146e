"""The AI labeler page of a project: start a labeler job (backend, model, server, prompt version) and watch
the project's jobs with live progress, cancel and resume. Managers only. The page is rendered with the
current jobs; its script (`loupe/labeler.js`) starts and steers them through the REST API."""

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from annotation.labeler.backends import BACKEND_KINDS
from annotation.labeler.prompts import PROMPTS
from annotation.models import AIFeedback, Response
from annotation.permissions import access_project_for_management
from annotation.services.labeler import labeler_jobs_reap_dead


@login_required
def labeler_page(request: HttpRequest, slug: str) -> HttpResponse:
    project = access_project_for_management(user=request.user, project_slug=slug)
    labeler_jobs_reap_dead()
    return render(
        request,
        "annotation/labeler.html",
        {
            "project": project,
            "jobs": project.labeler_jobs.order_by("-id")[:50],
            "backends": BACKEND_KINDS,
            "snapshots": project.snapshots.order_by("-id")[:50],
            "prompt_versions": sorted(PROMPTS),
            "responses": Response.objects.filter(project=project).count(),
            "feedback": AIFeedback.objects.filter(response__project=project).count(),
        },
    )
