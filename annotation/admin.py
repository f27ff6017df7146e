"""Django admin for annotation data: browse and fix projects, members and items.

Queue state (slots, leases) is kept by `annotation.services.queue`; the admin shows it read-only and
changes a project's overlap through the service, so tasks go back into the queue as they should.
"""

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from annotation import services
from annotation.models import (
    AISuggestionUse,
    Assignment,
    Correction,
    CrowdParticipant,
    DatasetSnapshot,
    Item,
    LabelerJob,
    Membership,
    PairwiseJudgment,
    PreferencePair,
    Project,
    Ranking,
    Rating,
    Response,
    SubmitRequest,
)

QUEUE_FIELDS = ["done_count", "taken_count", "is_open", "reopened"]


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 1
    autocomplete_fields = ["user"]


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ["slug", "name", "kind", "overlap", "visibility", "created_at"]
    search_fields = ["slug", "name"]
    inlines = [MembershipInline]

    def get_readonly_fields(self, request, obj=None):  # noqa: ANN001, ANN201 — Django's signature
        # Annotations index the kind's scale: neither changes once the project exists.
        return ["kind", "rating_levels", "hallucination_types"] if obj is not None else []

    def save_model(self, request, obj, form, change) -> None:  # noqa: ANN001 — Django's signature
        if change and "overlap" in form.changed_data:
            new_overlap = obj.overlap
            obj.overlap = Project.objects.get(pk=obj.pk).overlap
            super().save_model(request, obj, form, change)
            services.project_overlap_set(project=obj, overlap=new_overlap)
            obj.refresh_from_db()
        else:
            super().save_model(request, obj, form, change)


class ResponseInline(admin.TabularInline):
    model = Response
    extra = 0
    fields = ["position", "text", "model_name", *QUEUE_FIELDS]
    readonly_fields = QUEUE_FIELDS


@admin.register(Item)
class ItemAdmin(admin.ModelAdmin):
    list_display = ["external_id", "project", "done_count", "taken_count", "is_open", "created_at"]
    list_filter = ["project"]
    search_fields = ["external_id", "prompt"]
    readonly_fields = QUEUE_FIELDS
    inlines = [ResponseInline]


@admin.register(Assignment)
class AssignmentAdmin(admin.ModelAdmin):
    list_display = ["id", "project", "item", "annotator", "status", "lease_expires_at", "submitted_at"]
    list_filter = ["project", "status"]
    readonly_fields = ["project", "item", "response", "unit_id", "annotator", "status", "shown_order", "submitted_at"]


@admin.register(CrowdParticipant)
class CrowdParticipantAdmin(admin.ModelAdmin):
    list_display = ["user", "first_project", "created_at"]
    readonly_fields = ["user", "first_project", "address_hash", "created_at"]


@admin.register(DatasetSnapshot)
class DatasetSnapshotAdmin(admin.ModelAdmin):
    list_display = ["id", "project", "content_hash", "n_rows", "n_train", "n_test", "created_at"]
    readonly_fields = [f.name for f in DatasetSnapshot._meta.fields]

    def has_add_permission(self, request) -> bool:  # noqa: ANN001 — snapshots are made by the service only
        return False

    def has_change_permission(self, request, obj=None) -> bool:  # noqa: ANN001 — snapshots are immutable
        return False


for model in (PairwiseJudgment, Correction, Rating, Ranking, SubmitRequest):
    admin.site.register(model)


PAIR_EXCERPT_CHARS = 80


def _excerpt(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= PAIR_EXCERPT_CHARS else text[: PAIR_EXCERPT_CHARS - 1].rstrip() + "…"


@admin.register(PreferencePair)
class PreferencePairAdmin(admin.ModelAdmin):
    """Derived pairs as a researcher checks them: which item, from which feedback, what was chosen over what
    and how sure. Read-only: pairs are re-derived from annotations (`preference_pairs_refresh`)."""

    list_display = ["id", "project", "item_link", "source", "chosen_excerpt", "rejected_excerpt", "margin",
                    "agreement", "n_votes", "updated_at"]  # fmt: skip
    list_filter = ["project", "source"]
    search_fields = ["item__external_id", "chosen_text", "rejected_text"]
    list_select_related = ["project", "item"]
    readonly_fields = [f.name for f in PreferencePair._meta.fields]
    list_per_page = 50
    show_full_result_count = False  # no COUNT(*) over every pair on each page

    @admin.display(description="item", ordering="item__external_id")
    def item_link(self, pair: PreferencePair) -> str:
        url = reverse("browse-item", args=[pair.project.slug, pair.item_id])
        return format_html('<a href="{}">{}</a>', url, pair.item.external_id)

    @admin.display(description="chosen")
    def chosen_excerpt(self, pair: PreferencePair) -> str:
        return _excerpt(pair.chosen_text)

    @admin.display(description="rejected")
    def rejected_excerpt(self, pair: PreferencePair) -> str:
        return _excerpt(pair.rejected_text)

    def has_add_permission(self, request) -> bool:  # noqa: ANN001 — pairs are derived, never typed by hand
        return False


@admin.register(LabelerJob)
class LabelerJobAdmin(admin.ModelAdmin):
    """AI labeler jobs: read-only here (they are started from the labeler page, the API or `label_ai`)."""

    list_display = ["id", "project", "backend", "model", "prompt_version", "status", "done", "total", "created_at"]
    list_filter = ["status", "backend"]
    readonly_fields = [f.name for f in LabelerJob._meta.fields]

    def has_add_permission(self, request) -> bool:  # noqa: ANN001 — jobs are started by the service only
        return False


admin.site.register(AISuggestionUse)
