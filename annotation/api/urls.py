"""Routes of the annotation API, mounted under /api/v1/."""

from django.urls import path

from annotation.api import agreement, browse, captions, datasets, gold, labeler, projects, review, tasks

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
    # the data browser
    path("projects/<slug:slug>/browse/", browse.BrowseApi.as_view(), name="project-browse"),
    path("projects/<slug:slug>/browse/<int:item_id>/", browse.BrowseItemApi.as_view(), name="project-browse-item"),
    # the AI labeler
    path("projects/<slug:slug>/labeler-jobs/", labeler.LabelerJobListApi.as_view(), name="labeler-job-list"),
    path("projects/<slug:slug>/labeler-jobs/start/", labeler.LabelerJobStartApi.as_view(), name="labeler-job-start"),
    path("labeler-jobs/<int:job_id>/", labeler.LabelerJobDetailApi.as_view(), name="labeler-job-detail"),
    path("labeler-jobs/<int:job_id>/cancel/", labeler.LabelerJobCancelApi.as_view(), name="labeler-job-cancel"),
    path("labeler-jobs/<int:job_id>/resume/", labeler.LabelerJobResumeApi.as_view(), name="labeler-job-resume"),
    # gold tasks and trust
    path("projects/<slug:slug>/gold/", gold.GoldApi.as_view(), name="project-gold"),
    path("projects/<slug:slug>/trust/", gold.TrustApi.as_view(), name="project-trust"),
    # review (issue 17)
    path("projects/<slug:slug>/reviews/next/", review.ReviewNextApi.as_view(), name="review-next"),
    path("projects/<slug:slug>/reviews/", review.ReviewSubmitApi.as_view(), name="review-submit"),
    path("projects/<slug:slug>/my-reviews/", review.MyReviewsApi.as_view(), name="my-reviews"),
    # agreement (issue 17)
    path("projects/<slug:slug>/agreement/", agreement.ProjectAgreementApi.as_view(), name="project-agreement"),
    # the live caption table of rating projects (issue 15)
    path("projects/<slug:slug>/captions/", captions.CaptionTableApi.as_view(), name="caption-table"),
    path("projects/<slug:slug>/captions/export/", captions.CaptionExportApi.as_view(), name="caption-export"),
]
