"""Admin for benchmark runs (read-mostly: runs are started through the API, the page or the CLI)."""

from django.contrib import admin

from evaluation.models import BenchmarkExample, BenchmarkRun


class BenchmarkExampleInline(admin.TabularInline):
    model = BenchmarkExample
    extra = 0
    fields = ("index", "key", "answer", "hallucinated")
    readonly_fields = fields
    can_delete = False
    show_change_link = False
    max_num = 0


@admin.register(BenchmarkRun)
class BenchmarkRunAdmin(admin.ModelAdmin):
    list_display = ("id", "benchmark", "model_label", "status", "done", "total", "created_at")
    list_filter = ("benchmark", "status")
    readonly_fields = ("summary", "log", "error", "done", "total", "heartbeat_at", "started_at", "finished_at")
    raw_id_fields = ("model", "created_by")


@admin.register(BenchmarkExample)
class BenchmarkExampleAdmin(admin.ModelAdmin):
    list_display = ("run", "index", "key", "hallucinated")
    list_filter = ("hallucinated", "run__benchmark")
    raw_id_fields = ("run",)
