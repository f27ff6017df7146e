"""Routes of the training API, mounted under /api/v1/."""

from django.urls import path

from training import api

urlpatterns = [
    path("training-runs/", api.TrainingRunListApi.as_view(), name="training-run-list"),
    path("training-runs/<int:run_id>/", api.TrainingRunDetailApi.as_view(), name="training-run-detail"),
    path("training-runs/<int:run_id>/cancel/", api.TrainingRunCancelApi.as_view(), name="training-run-cancel"),
    path("training-runs/<int:run_id>/resume/", api.TrainingRunResumeApi.as_view(), name="training-run-resume"),
    path("training-methods/", api.TrainingMethodListApi.as_view(), name="training-method-list"),
    path("models/", api.ModelArtifactListApi.as_view(), name="model-artifact-list"),
    path("models/<int:artifact_id>/merge/", api.ModelArtifactMergeApi.as_view(), name="model-artifact-merge"),
    path("rounds/", api.RoundsRunListApi.as_view(), name="rounds-run-list"),
    path("rounds/<int:rounds_run_id>/", api.RoundsRunDetailApi.as_view(), name="rounds-run-detail"),
    path("rounds/<int:rounds_run_id>/cancel/", api.RoundsRunCancelApi.as_view(), name="rounds-run-cancel"),
    path("rounds/<int:rounds_run_id>/resume/", api.RoundsRunResumeApi.as_view(), name="rounds-run-resume"),
]
