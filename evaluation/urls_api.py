"""Routes of the evaluation API, mounted under /api/v1/."""

from django.urls import path

from evaluation import api

urlpatterns = [
    path("benchmark-runs/", api.BenchmarkRunListApi.as_view(), name="benchmark-run-list"),
    path("benchmark-runs/<int:run_id>/", api.BenchmarkRunDetailApi.as_view(), name="benchmark-run-detail"),
    path("benchmark-runs/<int:run_id>/cancel/", api.BenchmarkRunCancelApi.as_view(), name="benchmark-run-cancel"),
    path("benchmark-runs/<int:run_id>/examples/", api.BenchmarkExampleListApi.as_view(), name="benchmark-run-examples"),
    path("leaderboard/", api.LeaderboardApi.as_view(), name="leaderboard"),
]
