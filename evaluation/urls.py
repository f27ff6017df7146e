"""Page URLs of the evaluation app (the API's are in `urls_api`)."""

from django.urls import path

from evaluation import views

urlpatterns = [
    path("leaderboard/", views.leaderboard_page, name="leaderboard-page"),
    path("benchmarks/<int:run_id>/", views.benchmark_run_page, name="benchmark-run"),
    path("benchmarks/<int:run_id>/examples/<int:index>/image", views.benchmark_example_image, name="benchmark-image"),
]
