"""Admin for benchmark runs (read-mostly: runs are started through the API, the page or the CLI) and for recipe
runs (the add form and the *run again* action queue a recipe on a `training` worker)."""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError

from evaluation.models import BenchmarkExample, BenchmarkRun, RecipeRun
from evaluation.recipes import recipe_check, recipe_config_build
from evaluation.recipes.runs import recipe_run_start, recipe_runs_reap_dead
from loupe.errors import ApplicationError


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


class RecipeRunAddForm(forms.ModelForm):
    class Meta:
        model = RecipeRun
        fields = ["name", "size", "seed"]

    def clean(self) -> dict:
        data = super().clean()
        try:
            recipe_check(name=data.get("name") or "")
            recipe_config_build(size=data.get("size") or "", seed=data.get("seed") or 0)
        except ApplicationError as error:
            raise ValidationError(error.message) from error
        return data


@admin.register(RecipeRun)
class RecipeRunAdmin(admin.ModelAdmin):
    """Start a recipe (the add form queues it on a `training` worker) and run recipes again (the action)."""

    list_display = ("id", "name", "size", "seed", "status", "report_path", "created_at", "finished_at")
    list_filter = ("name", "status")
    actions = ["run_again"]

    def changelist_view(self, request, extra_context=None):  # noqa: ANN001, ANN201
        recipe_runs_reap_dead()  # a run whose worker died shows as failed, not running for ever
        return super().changelist_view(request, extra_context)

    def change_view(self, request, object_id, form_url="", extra_context=None):  # noqa: ANN001, ANN201
        recipe_runs_reap_dead()
        return super().change_view(request, object_id, form_url, extra_context)

    def get_form(self, request, obj=None, **kwargs):  # noqa: ANN001, ANN003, ANN201
        if obj is None:
            kwargs["form"] = RecipeRunAddForm
        return super().get_form(request, obj, **kwargs)

    def get_readonly_fields(self, request, obj=None) -> list[str]:  # noqa: ANN001
        return [] if obj is None else [f.name for f in RecipeRun._meta.fields]

    def save_model(self, request, obj, form, change) -> None:  # noqa: ANN001
        if change:
            return
        run = recipe_run_start(  # the form's clean ran the same checks
            name=form.cleaned_data["name"], size=form.cleaned_data["size"], seed=form.cleaned_data["seed"],
            created_by=request.user,
        )  # fmt: skip
        obj.pk = run.pk

    @admin.action(description="Run the selected recipes again (same recipe, size and seed; a new report)")
    def run_again(self, request, queryset) -> None:  # noqa: ANN001
        started = [
            recipe_run_start(name=run.name, size=run.size, seed=run.seed, created_by=request.user).pk
            for run in queryset
        ]
        messages.info(request, f"Queued recipe run(s) {', '.join(map(str, started))} on the training queue.")
