"""Django admin for annotation data: browse and fix projects, members and items."""

from django.contrib import admin

from annotation.models import (
    Assignment,
    Correction,
    DatasetSnapshot,
    Item,
    Membership,
    PairwiseJudgment,
    PreferencePair,
    Project,
    Rating,
    Ranking,
    Response,
)


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 1
    autocomplete_fields = ["user"]


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ["slug", "name", "kind", "overlap", "visibility", "created_at"]
    search_fields = ["slug", "name"]
    inlines = [MembershipInline]


class ResponseInline(admin.TabularInline):
    model = Response
    extra = 0


@admin.register(Item)
class ItemAdmin(admin.ModelAdmin):
    list_display = ["external_id", "project", "done_count", "created_at"]
    list_filter = ["project"]
    search_fields = ["external_id", "prompt"]
    inlines = [ResponseInline]


@admin.register(DatasetSnapshot)
class DatasetSnapshotAdmin(admin.ModelAdmin):
    list_display = ["id", "project", "content_hash", "n_rows", "n_train", "n_test", "created_at"]
    readonly_fields = [f.name for f in DatasetSnapshot._meta.fields]

    def has_add_permission(self, request) -> bool:  # noqa: ANN001 — snapshots are made by the service only
        return False

    def has_change_permission(self, request, obj=None) -> bool:  # noqa: ANN001 — snapshots are immutable
        return False


for model in (Assignment, PairwiseJudgment, Correction, Rating, Ranking, PreferencePair):
    admin.site.register(model)
