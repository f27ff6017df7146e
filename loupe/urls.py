"""URL map: pages (frontend), the REST API under /api/v1/, its schema and docs, and the Django admin."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from annotation import api as annotation_api
from training import api as training_api

api_v1 = [
    path("projects/", annotation_api.ProjectListApi.as_view(), name="project-list"),
    path("projects/<slug:slug>/", annotation_api.ProjectDetailApi.as_view(), name="project-detail"),
    path("projects/<slug:slug>/members/", annotation_api.ProjectMemberAddApi.as_view(), name="project-members"),
    path("projects/<slug:slug>/items/", annotation_api.ItemListApi.as_view(), name="item-list"),
    path("projects/<slug:slug>/imports/", annotation_api.ItemImportApi.as_view(), name="item-import"),
    path("projects/<slug:slug>/tasks/next/", annotation_api.TaskNextApi.as_view(), name="task-next"),
    path(
        "projects/<slug:slug>/tasks/<int:assignment_id>/submit/",
        annotation_api.TaskSubmitApi.as_view(),
        name="task-submit",
    ),
    path("projects/<slug:slug>/snapshots/", annotation_api.SnapshotListApi.as_view(), name="snapshot-list"),
    path("snapshots/<int:snapshot_id>/", annotation_api.SnapshotDetailApi.as_view(), name="snapshot-detail"),
    path("snapshots/<int:snapshot_id>/export/", annotation_api.SnapshotExportApi.as_view(), name="snapshot-export"),
    path("training-runs/", training_api.TrainingRunListApi.as_view(), name="training-run-list"),
    path("training-runs/<int:run_id>/", training_api.TrainingRunDetailApi.as_view(), name="training-run-detail"),
    path(
        "training-runs/<int:run_id>/cancel/", training_api.TrainingRunCancelApi.as_view(), name="training-run-cancel"
    ),
    path(
        "training-runs/<int:run_id>/resume/", training_api.TrainingRunResumeApi.as_view(), name="training-run-resume"
    ),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("redoc/", SpectacularRedocView.as_view(url_name="schema"), name="api-redoc"),
]

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include(api_v1)),
    path("", include("frontend.urls")),
]
