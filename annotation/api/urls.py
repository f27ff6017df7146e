"""Routes of the annotation API, mounted under /api/v1/."""

from django.urls import path

from annotation.api import datasets, projects, tasks

urlpatterns = [
    path("projects/", projects.ProjectListApi.as_view(), name="project-list"),
    path("projects/<slug:slug>/", projects.ProjectDetailApi.as_view(), name="project-detail"),
    path("projects/<slug:slug>/members/", projects.ProjectMemberAddApi.as_view(), name="project-members"),
    path("projects/<slug:slug>/items/", projects.ItemListApi.as_view(), name="item-list"),
    # tasks
    path("projects/<slug:slug>/tasks/next/", tasks.TaskNextApi.as_view(), name="task-next"),
    path("projects/<slug:slug>/tasks/<int:assignment_id>/submit/", tasks.TaskSubmitApi.as_view(), name="task-submit"),
    # datasets
    path("projects/<slug:slug>/imports/", datasets.ItemImportApi.as_view(), name="item-import"),
    path("projects/<slug:slug>/snapshots/", datasets.SnapshotListApi.as_view(), name="snapshot-list"),
    path("snapshots/<int:snapshot_id>/", datasets.SnapshotDetailApi.as_view(), name="snapshot-detail"),
    path("snapshots/<int:snapshot_id>/export/", datasets.SnapshotExportApi.as_view(), name="snapshot-export"),
]
