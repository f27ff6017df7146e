"""The review stream page (issue 17): reviewers and managers accept, edit or reject annotations from the
keyboard; the page talks to the review API (`annotation.api.review`)."""

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.csrf import ensure_csrf_cookie

from annotation.models import ProjectKind
from annotation.permissions import access_project_for_review


@login_required
@ensure_csrf_cookie
def review_page(request: HttpRequest, slug: str) -> HttpResponse:
    project = access_project_for_review(user=request.user, project_slug=slug)
    scale = project.rating_levels if project.kind == ProjectKind.RATING else project.hallucination_types
    return render(request, "annotation/review.html", {"project": project, "scale": scale})
