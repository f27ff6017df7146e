"""Pages of the annotation app. They only translate HTTP: data comes from selectors, access from
`permissions`, and the annotate page talks to the REST API from the browser."""

import mimetypes
from pathlib import Path

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from annotation import selectors
from annotation.models import Item
from annotation.permissions import access_project


@login_required
def home(request: HttpRequest) -> HttpResponse:
    projects = selectors.project_list_for_user(user=request.user)
    return render(request, "annotation/home.html", {"projects": projects})


@login_required
def project_page(request: HttpRequest, slug: str) -> HttpResponse:
    project = access_project(user=request.user, project_slug=slug)
    progress = selectors.project_progress(project=project, user=request.user)
    return render(request, "annotation/project.html", {"project": project, "progress": progress})


@login_required
def annotate_page(request: HttpRequest, slug: str) -> HttpResponse:
    project = access_project(user=request.user, project_slug=slug)
    progress = selectors.project_progress(project=project, user=request.user)
    return render(request, f"annotation/annotate_{project.kind}.html", {"project": project, "progress": progress})


@login_required
def item_image(request: HttpRequest, item_id: int) -> FileResponse:
    """An item's image, to members of its project only (media is never served publicly)."""
    item = Item.objects.select_related("project").filter(pk=item_id).first()
    if item is None or not item.image:
        raise Http404("No such image.")
    access_project(user=request.user, project_slug=item.project.slug)
    path = (Path(settings.MEDIA_ROOT) / item.image).resolve()
    if not path.is_relative_to(Path(settings.MEDIA_ROOT).resolve()) or not path.is_file():
        raise Http404("No such image.")
    content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    response = FileResponse(path.open("rb"), content_type=content_type)
    response["Cache-Control"] = "private, max-age=3600"
    response["X-Content-Type-Options"] = "nosniff"
    return response
