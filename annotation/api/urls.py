"""Routes of the annotation API, mounted under /api/v1/."""

from django.urls import path

from annotation.api import datasets, labeler, projects, tasks

urlpatterns = [
    path("projects/", projects.ProjectListApi.as_view(), name="project-list"),
    path("projects/<slug:slug>/", projects.ProjectDetailApi.as_view(), name="project-detail"),
    path("projects/<slug:slug>/members/", projects.ProjectMemberAddApi.as_view(), name="project-members"),
    path("projects/<slug:slug>/members/<str:username>/", projects.ProjectMemberApi.as_view(), name="project-member"),
    path("projects/<slug:slug>/items/", projects.ItemListApi.as_view(), name="item-list"),
    path("projects/<slug:slug>/stats/", projects.ProjectStatsApi.as_view(), name="project-stats"),
    # tasks
    path("projects/<slug:slug>/tasks/next/", tasks.TaskNextApi.as_view(), name="task-next"),
    path("projects/<slug:slug>/tasks/previous/", tasks.TaskPreviousApi.as_view(), name="task-previous"),
    path("projects/<slug:slug>/tasks/progress/", tasks.TaskProgressApi.as_view(), name="task-progress"),
    path("projects/<slug:slug>/tasks/<int:assignment_id>/", tasks.TaskDetailApi.as_view(), name="task-detail"),
    path("projects/<slug:slug>/tasks/<int:assignment_id>/submit/", tasks.TaskSubmitApi.as_view(), name="task-submit"),
    path("projects/<slug:slug>/tasks/<int:assignment_id>/skip/", tasks.TaskSkipApi.as_view(), name="task-skip"),
    # datasets
    path("projects/<slug:slug>/imports/", datasets.ItemImportApi.as_view(), name="item-import"),
    path("projects/<slug:slug>/snapshots/", datasets.SnapshotListApi.as_view(), name="snapshot-list"),
    path("snapshots/<int:snapshot_id>/", datasets.SnapshotDetailApi.as_view(), name="snapshot-detail"),
    path("snapshots/<int:snapshot_id>/export/", datasets.SnapshotExportApi.as_view(), name="snapshot-export"),
    path("snapshots/<int:snapshot_id>/export-jobs/", datasets.SnapshotExportJobApi.as_view(), name="export-job-start"),
    path("projects/<slug:slug>/import-jobs/", datasets.ImportJobApi.as_view(), name="import-job-start"),
    path("projects/<slug:slug>/jobs/", datasets.ProjectJobListApi.as_view(), name="data-job-list"),
    path("jobs/<int:job_id>/", datasets.DataJobDetailApi.as_view(), name="data-job-detail"),
    path("jobs/<int:job_id>/cancel/", datasets.DataJobCancelApi.as_view(), name="data-job-cancel"),
    path("jobs/<int:job_id>/download/", datasets.DataJobDownloadApi.as_view(), name="data-job-download"),
    # the AI labeler
    path("projects/<slug:slug>/labeler-jobs/", labeler.LabelerJobListApi.as_view(), name="labeler-job-list"),
    path("projects/<slug:slug>/labeler-jobs/start/", labeler.LabelerJobStartApi.as_view(), name="labeler-job-start"),
    path("labeler-jobs/<int:job_id>/", labeler.LabelerJobDetailApi.as_view(), name="labeler-job-detail"),
    path("labeler-jobs/<int:job_id>/cancel/", labeler.LabelerJobCancelApi.as_view(), name="labeler-job-cancel"),
    path("labeler-jobs/<int:job_id>/resume/", labeler.LabelerJobResumeApi.as_view(), name="labeler-job-resume"),
]
