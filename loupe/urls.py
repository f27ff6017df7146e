"""URL map: pages (frontend), the REST API under /api/v1/, its schema and docs, and the Django admin; the
error pages (403 and 404 with the top bar and a way back)."""

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.templatetags.static import static
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerSplitView

api_v1 = [
    path("", include("annotation.api.urls")),
    path("", include("training.urls_api")),
    path("", include("evaluation.urls_api")),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves its start-up script as a file: the Content-Security-Policy allows no inline script.
    path("docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="api-docs"),
    path("redoc/", SpectacularRedocView.as_view(url_name="schema"), name="api-redoc"),
]


def favicon(request: HttpRequest) -> HttpResponse:
    """Loupe's pages name their icon in <head>; the admin, the API docs and other clients ask for /favicon.ico.
    Not a permanent redirect: the icon's static name carries its content hash."""
    return redirect(static("loupe/favicon.svg"))


urlpatterns = [
    path("favicon.ico", favicon),
    path("admin/", admin.site.urls),
    path("api/v1/", include(api_v1)),
    path("", include("evaluation.urls")),
    path("", include("frontend.urls")),
]


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """404, or the 403 of a member who may see a project but not manage it (`ManagerRequired`)."""
    from annotation.permissions import ManagerRequired

    if isinstance(exception, ManagerRequired):
        return permission_denied(request, exception)
    return render(request, "404.html", {"request_path": request.path}, status=404)


def permission_denied(request: HttpRequest, exception: Exception) -> HttpResponse:
    # Messages of PermissionDenied in Loupe are written for the user ("Only staff create projects.").
    return render(request, "403.html", {"reason": str(exception)}, status=403)


handler404 = page_not_found
handler403 = permission_denied
