"""Page URLs for annotators, researchers and admins."""

from django.contrib.auth import views as auth_views
from django.urls import path

from annotation import views as annotation_views
from annotation import views_browse, views_datasets, views_labeler, views_review
from training import views as training_views

urlpatterns = [
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", annotation_views.home, name="home"),
    path("projects/new/", annotation_views.project_new, name="project-new"),
    path("projects/<slug:slug>/", annotation_views.project_page, name="project"),
    path("projects/<slug:slug>/dashboard/", annotation_views.dashboard, name="dashboard"),
    path("projects/<slug:slug>/members/", annotation_views.member_add, name="member-add"),
    path("projects/<slug:slug>/members/<int:user_id>/remove/", annotation_views.member_remove, name="member-remove"),
    path("projects/<slug:slug>/annotate/", annotation_views.annotate_page, name="annotate"),
    path("projects/<slug:slug>/datasets/", views_datasets.datasets_page, name="datasets"),
    path(
        "projects/<slug:slug>/datasets/exports/<int:job_id>/download/",
        views_datasets.export_download,
        name="datasets-export-download",
    ),
    path("projects/<slug:slug>/labeler/", views_labeler.labeler_page, name="labeler"),
    path("projects/<slug:slug>/review/", views_review.review_page, name="review"),
    path("projects/<slug:slug>/data/", views_browse.browse_page, name="browse"),
    path("projects/<slug:slug>/data/<int:item_id>/", views_browse.browse_item_page, name="browse-item"),
    path("crowd/<slug:slug>/", annotation_views.crowd_page, name="crowd"),
    path("items/<int:item_id>/image", annotation_views.item_image, name="item-image"),
    path("runs/", training_views.run_list_page, name="runs"),
    path("runs/<int:run_id>/", training_views.run_page, name="run"),
    path("models/", training_views.model_list_page, name="models"),
    path("models/<int:artifact_id>/merge/", training_views.model_merge_action, name="model-merge"),
]
