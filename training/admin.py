"""Django admin for training: admins can start a run here; it goes through the same service as the API."""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError

from annotation.models import Project
from loupe.errors import ApplicationError
from training import rounds, services
from training.models import JobStatus, ModelArtifact, Round, RoundsRun, TrainingRun


class TrainingRunAddForm(forms.ModelForm):
    method = forms.ChoiceField(choices=[(name, name) for name in sorted(services.METHOD_CONFIGS)])
    base_model = forms.CharField(
        required=False,
        max_length=500,
        help_text="A local model folder or a registered model's name; leave empty when a base artifact is chosen.",
    )

    class Meta:
        model = TrainingRun
        fields = ["method", "snapshot", "base_artifact", "base_model", "config"]

    def clean(self) -> dict:
        data = super().clean()
        try:
            services.method_config_build(method=data.get("method", ""), config=data.get("config") or {})
        except ApplicationError as error:
            raise ValidationError(error.message) from error
        artifact = data.get("base_artifact")
        if artifact is None and not (data.get("base_model") or "").strip():
            raise ValidationError("Choose a base artifact or give a base model (a folder or a registered name).")
        if artifact is None:
            try:  # the run checks' base-model test, shown on the form rather than failing in save_model
                services.base_model_check(base_model=data["base_model"])
            except ApplicationError as error:
                raise ValidationError(error.message) from error
        if artifact is not None and artifact.is_adapter:
            raise ValidationError(f"{artifact.name} is a LoRA adapter; merge it into a full model first.")
        return data


@admin.register(TrainingRun)
class TrainingRunAdmin(admin.ModelAdmin):
    list_display = ["id", "method", "base_model", "snapshot", "status", "step", "max_steps", "created_at"]
    list_filter = ["status", "method"]
    actions = ["cancel_runs", "resume_runs"]

    def get_form(self, request, obj=None, **kwargs):  # noqa: ANN001, ANN003, ANN201
        if obj is None:
            kwargs["form"] = TrainingRunAddForm
        return super().get_form(request, obj, **kwargs)

    def get_readonly_fields(self, request, obj=None) -> list[str]:  # noqa: ANN001
        return [] if obj is None else [f.name for f in TrainingRun._meta.fields]

    def save_model(self, request, obj, form, change) -> None:  # noqa: ANN001
        if change:
            return
        run = services.training_run_create(
            method=form.cleaned_data["method"],
            snapshot=form.cleaned_data["snapshot"],
            base_model=form.cleaned_data["base_model"] or "",
            base_artifact=form.cleaned_data.get("base_artifact"),
            config=form.cleaned_data["config"] or {},
            created_by=request.user,
        )
        obj.pk = run.pk

    @admin.action(description="Cancel selected runs")
    def cancel_runs(self, request, queryset) -> None:  # noqa: ANN001
        for run in queryset.filter(status__in=[JobStatus.QUEUED, JobStatus.RUNNING]):
            services.training_run_cancel(run=run)
        messages.info(request, "Cancel requested.")

    @admin.action(description="Resume selected runs (from their last checkpoint where one was saved)")
    def resume_runs(self, request, queryset) -> None:  # noqa: ANN001
        for run in queryset.filter(status__in=[JobStatus.FAILED, JobStatus.CANCELLED]):
            services.training_run_resume(run=run)
        messages.info(request, "Resumed.")


@admin.register(ModelArtifact)
class ModelArtifactAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "kind",
        "is_adapter",
        "location",
        "base",
        "base_name",
        "snapshot",
        "produced_by",
        "created_at",
    ]
    list_filter = ["kind", "is_adapter"]
    search_fields = ["name", "location", "base_name"]


class RoundsRunAddForm(forms.ModelForm):
    """Start K rounds: the same checks as the API and `manage.py rounds`."""

    base_model = forms.CharField(
        max_length=500, help_text="A registered model's name or id, or a folder or hub name (registered then)."
    )

    class Meta:
        model = RoundsRun
        fields = ["project", "base_model", "n_rounds", "config"]
        help_texts = {
            "config": 'RoundsConfig: labeler_model is required, e.g. {"labeler_model": "var/models/tiny-vlm"}.'
        }

    def clean(self) -> dict:
        data = super().clean()
        try:
            rounds.rounds_config_check(config=data.get("config") or {})
            if data.get("project") is not None:
                rounds.rounds_project_check(project=data["project"])
            rounds.rounds_base_find(reference=data.get("base_model") or "")
        except ApplicationError as error:
            raise ValidationError(error.message) from error
        return data


class RoundInline(admin.TabularInline):
    model = Round
    extra = 0
    can_delete = False
    fields = ["number", "policy", "generated_at", "labeler_job", "snapshot", "training_run", "model", "figures"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:  # noqa: ANN001
        return False


@admin.register(RoundsRun)
class RoundsRunAdmin(admin.ModelAdmin):
    list_display = ["id", "project", "base_artifact", "n_rounds", "status", "current_round", "step", "created_at"]
    list_filter = ["status"]
    actions = ["start_or_resume", "cancel_runs"]
    inlines = [RoundInline]

    def get_form(self, request, obj=None, **kwargs):  # noqa: ANN001, ANN003, ANN201
        if obj is None:
            kwargs["form"] = RoundsRunAddForm
        return super().get_form(request, obj, **kwargs)

    def get_readonly_fields(self, request, obj=None) -> list[str]:  # noqa: ANN001
        return [] if obj is None else [f.name for f in RoundsRun._meta.fields]

    def get_inlines(self, request, obj):  # noqa: ANN001, ANN201
        return [] if obj is None else self.inlines

    def save_model(self, request, obj, form, change) -> None:  # noqa: ANN001
        if change:
            return
        project: Project = form.cleaned_data["project"]
        run = rounds.rounds_run_start(  # the form's clean ran the same checks
            project=project,
            base_model=form.cleaned_data["base_model"],
            n_rounds=form.cleaned_data["n_rounds"],
            config=form.cleaned_data["config"] or {},
            created_by=request.user,
        )
        obj.pk = run.pk

    def save_related(self, request, form, formsets, change) -> None:  # noqa: ANN001
        if change:
            super().save_related(request, form, formsets, change)

    @admin.action(description="Start or resume selected rounds runs (failed or cancelled continue at their step)")
    def start_or_resume(self, request, queryset) -> None:  # noqa: ANN001
        resumed = 0
        for run in queryset.filter(status__in=[JobStatus.FAILED, JobStatus.CANCELLED]):
            rounds.rounds_run_resume(rounds_run=run)
            resumed += 1
        messages.info(request, f"Resumed {resumed} rounds run(s); queued and running ones were left as they are.")

    @admin.action(description="Cancel selected rounds runs")
    def cancel_runs(self, request, queryset) -> None:  # noqa: ANN001
        for run in queryset.filter(status__in=[JobStatus.QUEUED, JobStatus.RUNNING]):
            rounds.rounds_run_cancel(rounds_run=run)
        messages.info(request, "Cancel requested.")
