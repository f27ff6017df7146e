"""Writes for the annotation app, one module per sub-domain. Every function takes keyword-only arguments,
checks what it needs, and raises `ApplicationError` with a message a user can act on.

The names are re-exported here because views, APIs, commands and tests call them as `services.<name>`.
"""

from annotation.services.crowd import participant_create
from annotation.services.exports import (
    BOOLEAN_EXPORT_OPTIONS,
    EXPORT_FORMATS,
    snapshot_export,
    snapshot_export_archive,
)
from annotation.services.imports import IMPORT_FORMATS, ImportReport, items_import
from annotation.services.jobs import (
    data_job_cancel,
    data_job_download_name,
    data_job_execute,
    data_job_export_start,
    data_job_import_start,
    data_job_progress,
    data_job_result_file,
    data_jobs_reap_dead,
)
from annotation.services.preference_pairs import (
    ai_feedback_record,
    preference_pairs_rebuild,
    preference_pairs_refresh,
    preference_pairs_refresh_project,
    preference_pairs_refresh_stale,
    rating_counts_recount,
)
from annotation.services.projects import (
    project_create,
    project_member_add,
    project_member_invite,
    project_member_remove,
    project_overlap_set,
    project_update,
    user_find,
)
from annotation.services.queue import (
    assignment_next,
    assignment_skip,
    correction_submit,
    leases_reclaim,
    pairwise_judgment_submit,
    queue_units_sync,
    ranking_submit,
    rating_submit,
)
from annotation.services.snapshots import SNAPSHOT_KINDS, SPLIT_BY, SnapshotFilter, snapshot_create, snapshot_kind

__all__ = [
    "BOOLEAN_EXPORT_OPTIONS",
    "EXPORT_FORMATS",
    "IMPORT_FORMATS",
    "SNAPSHOT_KINDS",
    "SPLIT_BY",
    "ImportReport",
    "SnapshotFilter",
    "ai_feedback_record",
    "data_job_cancel",
    "data_job_download_name",
    "data_job_execute",
    "data_job_export_start",
    "data_job_import_start",
    "data_job_progress",
    "data_job_result_file",
    "data_jobs_reap_dead",
    "assignment_next",
    "assignment_skip",
    "correction_submit",
    "items_import",
    "leases_reclaim",
    "pairwise_judgment_submit",
    "participant_create",
    "preference_pairs_rebuild",
    "preference_pairs_refresh",
    "preference_pairs_refresh_project",
    "preference_pairs_refresh_stale",
    "rating_counts_recount",
    "project_create",
    "project_member_add",
    "project_member_invite",
    "project_member_remove",
    "project_overlap_set",
    "project_update",
    "user_find",
    "queue_units_sync",
    "ranking_submit",
    "rating_submit",
    "snapshot_create",
    "snapshot_export",
    "snapshot_export_archive",
    "snapshot_kind",
]
