"""Pages of the annotation app. They only translate HTTP: data comes from selectors, access from
`permissions`, writes from services; the annotate pages talk to the REST API from the browser."""

import mimetypes
from pathlib import Path

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.decorators.http import require_POST

from annotation import assignment as rules
from annotation import selectors, services
from annotation.models import Item, Project, ProjectKind, Role, Visibility
from annotation.permissions import access_project, access_project_for_management, is_manager
from annotation.selectors_agreement import agreement_dashboard
from annotation.selectors_captions import caption_dashboard
from annotation.selectors_labeler import labeler_agreement
from annotation.selectors_review import review_card
from annotation.selectors_trust import trust_summary
from annotation.services.crowd import PARTICIPANT_COOKIE, participant_from_cookie
from loupe.errors import ApplicationError

KIND_HELP = {
    ProjectKind.CORRECTION: "Mark hallucinated spans of an answer and type the correct text (RLHF-V).",
    ProjectKind.PAIRWISE: "Pick the better of two answers, with a strength and a reason.",
    ProjectKind.RATING: "Rate one caption at a time on the project's scale (crowd rating).",
    ProjectKind.RANKING: "Order several answers from best to worst.",
}


@login_required
def home(request: HttpRequest) -> HttpResponse:
    projects = list(selectors.project_list_for_user(user=request.user))
    managed = {project.pk for project in projects if is_manager(user=request.user, project=project)}
    public = [project for project in selectors.public_projects() if project not in projects]
    rows = [(project, selectors.project_overview(project=project, user=request.user)) for project in projects]
    return render(request, "annotation/home.html", {"rows": rows, "managed": managed, "public": public})


@login_required
def project_page(request: HttpRequest, slug: str) -> HttpResponse:
    project = access_project(user=request.user, project_slug=slug)
    progress = selectors.project_progress(project=project, user=request.user)
    return render(
        request,
        "annotation/project.html",
        {
            "project": project,
            "progress": progress,
            "manager": is_manager(user=request.user, project=project),
            "review": review_card(project=project, user=request.user),
        },
    )


def _annotate_context(request: HttpRequest, project: Project, user: object, *, crowd: bool) -> dict:
    progress = selectors.project_progress(project=project, user=user) if user is not None else None
    return {
        "project": project,
        "progress": progress,
        "crowd": crowd,
        "scale": project.rating_levels if project.kind == ProjectKind.RATING else project.hallucination_types,
    }


@login_required
@ensure_csrf_cookie
def annotate_page(request: HttpRequest, slug: str) -> HttpResponse:
    project = access_project(user=request.user, project_slug=slug)
    return render(
        request,
        f"annotation/annotate_{project.kind}.html",
        _annotate_context(request, project, request.user, crowd=False),
    )


@ensure_csrf_cookie
def crowd_page(request: HttpRequest, slug: str) -> HttpResponse:
    """A public project's annotate page for anyone: no account; the first task creates a participant."""
    project = Project.objects.filter(slug=slug, visibility=Visibility.PUBLIC).first()
    if project is None:
        raise Http404("No such project.")
    user = (
        request.user
        if request.user.is_authenticated
        else participant_from_cookie(request.COOKIES.get(PARTICIPANT_COOKIE))
    )
    response = render(
        request, f"annotation/annotate_{project.kind}.html", _annotate_context(request, project, user, crowd=True)
    )
    response["Referrer-Policy"] = "same-origin"
    return response


def item_image(request: HttpRequest, item_id: int) -> FileResponse:
    """An item's image, to those who may annotate its project only (media is never served publicly)."""
    user = request.user
    if not user.is_authenticated:
        user = participant_from_cookie(request.COOKIES.get(PARTICIPANT_COOKIE))
    if user is None:
        return redirect(f"{settings.LOGIN_URL}?next={request.path}")
    item = Item.objects.select_related("project").filter(pk=item_id).first()
    if item is None or not item.image:
        raise Http404("No such image.")
    access_project(user=user, project_slug=item.project.slug)
    path = (Path(settings.MEDIA_ROOT) / item.image).resolve()
    if not path.is_relative_to(Path(settings.MEDIA_ROOT).resolve()) or not path.is_file():
        raise Http404("No such image.")
    content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    response = FileResponse(path.open("rb"), content_type=content_type)
    response["Cache-Control"] = "private, max-age=3600"
    response["X-Content-Type-Options"] = "nosniff"
    return response


# ------------------------------------------------------------------------------------ researchers


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.replace(",", "\n").splitlines() if line.strip()]


class ProjectForm(forms.Form):
    slug = forms.SlugField(max_length=80, help_text="Short name for URLs: letters, digits, dashes.")
    name = forms.CharField(max_length=200, required=False)
    kind = forms.ChoiceField(choices=ProjectKind.choices)
    instructions = forms.CharField(widget=forms.Textarea(attrs={"rows": 4}), required=False)
    overlap = forms.IntegerField(min_value=1, max_value=1000, initial=1, help_text="Distinct annotators per task.")
    visibility = forms.ChoiceField(
        choices=Visibility.choices,
        initial=Visibility.MEMBERS,
        help_text="Members only: its members (below) and staff. Public: also anyone, without an account, at "
        "/crowd/SLUG/ (a crowd rating project).",
    )
    show_ai_suggestions = forms.BooleanField(required=False, label="Show the AI labeler's suggestions")
    scale = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        label="Rating levels or hallucination types",
        help_text="One per line or comma-separated, worst level first; empty for the defaults.",
    )
    public_quota = forms.IntegerField(min_value=0, initial=200, help_text="Answers per crowd participant (0: none).")
    public_rate_per_minute = forms.IntegerField(min_value=0, initial=60, help_text="New tasks per minute (0: any).")
    rating_sampling = forms.ChoiceField(
        choices=Project._meta.get_field("rating_sampling").choices,
        initial="uniform",
        required=False,
        label="Caption sampling (rating projects)",
        help_text=Project._meta.get_field("rating_sampling").help_text,
    )
    rating_top_k = forms.IntegerField(
        min_value=1, max_value=1000, initial=10, required=False, label="Top k captions (adaptive sampling)"
    )
    annotators = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Usernames or emails of existing accounts, one per line or comma-separated.",
    )
    managers = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 1}),
        help_text="Also see the dashboard, import, export and add members (you are one already).",
    )

    def clean_rating_sampling(self) -> str:
        return self.cleaned_data.get("rating_sampling") or "uniform"

    def clean_rating_top_k(self) -> int:
        top_k = self.cleaned_data.get("rating_top_k")
        return 10 if top_k is None else top_k


@login_required
def project_new(request: HttpRequest) -> HttpResponse:
    """Create a project from the page (staff, as through the API)."""
    if not request.user.is_staff:
        raise PermissionDenied("Only staff create projects.")
    form = ProjectForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        values = dict(form.cleaned_data)
        scale = _lines(values.pop("scale"))
        try:
            project = services.project_create(
                created_by=request.user,
                rating_levels=scale if values["kind"] == ProjectKind.RATING else None,
                hallucination_types=scale if values["kind"] == ProjectKind.CORRECTION else None,
                annotators=_lines(values.pop("annotators")),
                managers=_lines(values.pop("managers")),
                **values,
            )
        except ApplicationError as error:
            form.add_error(error.extra.get("field") if error.extra.get("field") in form.fields else None, error.message)
        else:
            return redirect("dashboard", slug=project.slug)
    return render(request, "annotation/project_new.html", {"form": form, "kind_help": KIND_HELP})


class SettingsForm(forms.Form):
    instructions = forms.CharField(widget=forms.Textarea(attrs={"rows": 4}), required=False)
    overlap = forms.IntegerField(min_value=1, max_value=1000)
    visibility = forms.ChoiceField(choices=Visibility.choices)
    show_ai_suggestions = forms.BooleanField(required=False, label="Show the AI labeler's suggestions")
    public_quota = forms.IntegerField(min_value=0)
    public_rate_per_minute = forms.IntegerField(min_value=0)
    # Left out of a post (a form from before these fields): unchanged (project_update skips None).
    rating_sampling = forms.ChoiceField(
        choices=Project._meta.get_field("rating_sampling").choices,
        required=False,
        label="Caption sampling (rating projects)",
        help_text=Project._meta.get_field("rating_sampling").help_text,
    )
    rating_top_k = forms.IntegerField(
        min_value=1,
        max_value=1000,
        required=False,
        label="Top k captions",
        help_text="How many of the best captions adaptive sampling looks for.",
    )

    def clean_rating_sampling(self) -> str | None:
        return self.cleaned_data.get("rating_sampling") or None


@login_required
def dashboard(request: HttpRequest, slug: str) -> HttpResponse:
    """Progress per task and per annotator, annotations per hour, time per task; settings and imports."""
    project = access_project_for_management(user=request.user, project_slug=slug)
    initial = {name: getattr(project, name) for name in SettingsForm.base_fields}
    form = SettingsForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            services.project_update(project=project, **form.cleaned_data)
        except ApplicationError as error:
            form.add_error(None, error.message)
        else:
            return redirect("dashboard", slug=project.slug)
    try:
        page = max(0, int(request.GET.get("page", "0")))
    except ValueError:
        page = 0
    per_page = 50
    stats = selectors.project_dashboard(project=project)
    peak = max([row["n"] for row in stats["per_hour"]] + [1])
    return render(
        request,
        "annotation/dashboard.html",
        {
            "project": project,
            "stats": stats,
            "peak": peak,
            "tasks": selectors.project_tasks_page(project=project, offset=page * per_page, limit=per_page),
            "page": page,
            "has_next": (page + 1) * per_page < stats["total"],
            "form": form,
            "crowd_url": request.build_absolute_uri(f"/crowd/{project.slug}/")
            if project.visibility == Visibility.PUBLIC
            else None,
            "import_formats": getattr(services, "IMPORT_FORMATS", ("loupe-jsonl",)),
            "max_scale": rules.MAX_SCALE_ENTRIES,
            "labeler_agreement": labeler_agreement(project=project),
            "agreement": agreement_dashboard(project=project),
            "members": selectors.project_members(project=project),
            "roles": Role.choices,
            "captions": caption_dashboard(project=project),
            "trust": trust_summary(project=project),
        },
    )


class MemberForm(forms.Form):
    """One member to add, or whose role to change (the dashboard's members card)."""

    username_or_email = forms.CharField(max_length=254, label="Username or email")
    role = forms.ChoiceField(choices=Role.choices, initial=Role.ANNOTATOR)


def _back_to_members(request: HttpRequest, slug: str, *, error: str = "", done: str = "") -> HttpResponse:
    """Back to the dashboard's members card, with what happened (shown there once)."""
    if error:
        messages.error(request, error)
    if done:
        messages.success(request, done)
    return redirect(f"{redirect('dashboard', slug=slug).url}#members")


@login_required
@require_POST
def member_add(request: HttpRequest, slug: str) -> HttpResponse:
    """Add an account by username or email with a role, or change a member's role (managers only)."""
    project = access_project_for_management(user=request.user, project_slug=slug)
    form = MemberForm(request.POST)
    if not form.is_valid():
        problems = "; ".join(f"{name}: {' '.join(errors)}" for name, errors in form.errors.items())
        return _back_to_members(request, slug, error=problems)
    try:
        membership = services.project_member_invite(project=project, **form.cleaned_data)
    except ApplicationError as error:
        return _back_to_members(request, slug, error=error.message)
    name = membership.user.get_username()
    return _back_to_members(request, slug, done=f"{name} is now {membership.get_role_display().lower()}.")


@login_required
@require_POST
def member_remove(request: HttpRequest, slug: str, user_id: int) -> HttpResponse:
    """Take a member out of the project (managers only; the last manager stays)."""
    project = access_project_for_management(user=request.user, project_slug=slug)
    membership = next((m for m in selectors.project_members(project=project) if m.user_id == user_id), None)
    if membership is None:
        raise Http404("No such member.")
    try:
        services.project_member_remove(project=project, user=membership.user)
    except ApplicationError as error:
        return _back_to_members(request, slug, error=error.message)
    return _back_to_members(request, slug, done=f"{membership.user.get_username()} was removed from the project.")
