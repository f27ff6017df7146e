"""REST API: the task queue — next task, submit (every kind; also amends), skip, going back, progress.

These endpoints also accept anonymous crowd participants of public projects: the first `next` from a
browser without an account creates one (`annotation.services.crowd`) and sets its cookie (a random token); later
calls authenticate by that cookie, with the same CSRF check as a session.
"""

import threading
from typing import Any

from django.contrib.auth import get_user_model
from django.db import connection
from django.urls import reverse
from drf_spectacular.drainage import set_override
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_serializer
from rest_framework import exceptions, serializers, status
from rest_framework.authentication import SessionAuthentication, TokenAuthentication
from rest_framework.authtoken.models import Token
from rest_framework.negotiation import BaseContentNegotiation, DefaultContentNegotiation
from rest_framework.parsers import FormParser
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response as ApiResponse
from rest_framework.views import APIView

from annotation import assignment as rules
from annotation import selectors, services
from annotation.models import Assignment, Project, ProjectKind, Visibility
from annotation.permissions import access_project
from annotation.services.crowd import (
    COOKIE_MAX_AGE,
    PARTICIPANT_COOKIE,
    participant_from_cookie,
)
from annotation.services.queue import SUBMITTERS, RateLimited, queue_empty_reason, quota_left
from loupe import rows
from loupe.errors import ApplicationError
from loupe.parsers import CheckedJSONParser


class ParticipantAuthentication(SessionAuthentication):
    """An anonymous crowd participant, by the random-token cookie set on their first task; CSRF-checked like a
    session, since a browser sends the cookie by itself."""

    def authenticate(self, request: Request) -> tuple[Any, None] | None:
        user = participant_from_cookie(request._request.COOKIES.get(PARTICIPANT_COOKIE))
        if user is None:
            return None
        self.enforce_csrf(request)
        return (user, None)


class QuickTokenAuthentication(TokenAuthentication):
    """DRF's token authentication in one raw query (the task endpoints run it on every request)."""

    def authenticate_credentials(self, key: str) -> tuple[Any, str]:
        users, tokens = (connection.ops.quote_name(m._meta.db_table) for m in (get_user_model(), Token))
        user = rows.instance(
            get_user_model(),
            f"SELECT u.* FROM {users} u JOIN {tokens} t ON t.user_id = u.id WHERE t.key = %s",  # noqa: S608
            [key],
        )
        if user is None:
            raise exceptions.AuthenticationFailed("Invalid token.")
        if not user.is_active:
            raise exceptions.AuthenticationFailed("User inactive or deleted.")
        return (user, key)


TASK_AUTHENTICATION = [QuickTokenAuthentication, SessionAuthentication, ParticipantAuthentication]


class JsonOnlyNegotiation(BaseContentNegotiation):
    """The task endpoints answer JSON whatever the `Accept` header says: their clients are the annotate
    pages and scripts, and parsing the header against the browsable API's renderer cost more per request
    than the queue's own reads."""

    def select_parser(self, request: Request, parsers: list) -> Any:
        return DefaultContentNegotiation().select_parser(request, parsers)

    def select_renderer(self, request: Request, renderers: list, format_suffix: str | None = None) -> tuple:
        return (renderers[0], renderers[0].media_type)


class TaskApiView(APIView):
    """What every task endpoint shares: its authentication, JSON answers."""

    authentication_classes = TASK_AUTHENTICATION
    renderer_classes = [JSONRenderer]
    content_negotiation_class = JsonOnlyNegotiation


_thread_fields = threading.local()


class ReusedFieldsSerializer(serializers.Serializer):
    """A serializer whose fields are built once per thread, not deep-copied for every instance as DRF does
    (~0.3 ms per submit). Only for flat serializers of plain fields with constant defaults, which never read
    their parent: the fields stay bound to the thread's first instance."""

    @property
    def fields(self) -> Any:
        cache = _thread_fields.__dict__
        fields = cache.get(type(self))
        if fields is None:
            fields = cache[type(self)] = serializers.Serializer.fields.func(self)
        return fields


# The schema: QuickTokenAuthentication takes the same `Authorization: Token …` header as DRF's own, so it is
# the one `tokenAuth` scheme (drf-spectacular's TokenScheme matches subclasses), not a second component.
set_override(QuickTokenAuthentication, "suppress_collision_warning", True)


class ParticipantCookieScheme(OpenApiAuthenticationExtension):
    """The crowd participant's cookie, as a security scheme of the task endpoints."""

    target_class = ParticipantAuthentication
    name = "participantCookie"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "apiKey",
            "in": "cookie",
            "name": PARTICIPANT_COOKIE,
            "description": "Set by the first `tasks/next/` of a public project from a browser without an account.",
        }


class ResponseShownSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    text = serializers.CharField()


class QueueEmptySerializer(serializers.Serializer):
    """Why no task is left for you (what `tasks/next/`'s 204 says in its headers)."""

    reason = serializers.CharField(
        help_text="no_tasks, all_done, done_for_you, wait, quota; rate_limited for a crowd participant going too fast."
    )
    message = serializers.CharField(help_text="What the annotate page shows.")


class TaskOutputSerializer(serializers.Serializer):
    """A task as the annotate page shows it."""

    assignment_id = serializers.IntegerField()
    kind = serializers.CharField()
    status = serializers.CharField()
    item_id = serializers.IntegerField()
    response_id = serializers.IntegerField(allow_null=True, help_text="The answer judged (correction, rating).")
    prompt = serializers.CharField()
    image_url = serializers.CharField(allow_null=True)
    responses = ResponseShownSerializer(many=True, help_text="In the order shown (left to right, top to bottom).")
    lease_expires_at = serializers.DateTimeField()
    answer = serializers.DictField(allow_null=True, help_text="Your stored answer, for a task you submitted.")
    ai_suggestion = serializers.DictField(allow_null=True, help_text="The AI labeler's verdicts, if shown.")


def task_payload(assignment: Assignment, *, project: Project) -> dict[str, Any]:
    assignment.project = project
    prompt, image, shown = selectors.task_texts(item_id=assignment.item_id, response_ids=assignment.shown_order)
    suggestion = None
    if project.show_ai_suggestions:
        verdicts = selectors.ai_suggestions(response_ids=[pk for pk, _ in shown])
        suggestion = {"responses": {str(pk): verdict for pk, verdict in verdicts.items()}} if verdicts else None
    return {
        "assignment_id": assignment.pk,
        "kind": project.kind,
        "status": assignment.status,
        "item_id": assignment.item_id,
        "response_id": assignment.response_id,
        "prompt": prompt,
        "image_url": reverse("item-image", args=[assignment.item_id]) if image else None,
        "responses": [{"id": pk, "text": text} for pk, text in shown],
        "lease_expires_at": assignment.lease_expires_at,
        "answer": selectors.assignment_answer(assignment=assignment),
        "ai_suggestion": suggestion,
    }


def _queue_empty(project: Project, user: Any) -> dict[str, str]:
    """Why the queue has nothing for this user: `reason` (an `EmptyReason`) and the page's `message`."""
    reason = queue_empty_reason(project=project, annotator=user)
    return {"reason": reason.value, "message": rules.empty_message(reason, quota=project.public_quota)}


def _empty(project: Project, user: Any) -> ApiResponse:
    empty = _queue_empty(project, user)
    return ApiResponse(
        status=status.HTTP_204_NO_CONTENT,
        headers={"X-Queue-Reason": empty["reason"], "X-Queue-Message": empty["message"]},
    )


def _after_param(request: Request) -> int | None:
    """The `after` query parameter (an assignment id of the caller's, still shown), checked."""
    after = request.query_params.get("after")
    if after is not None and not (after.isascii() and after.isdigit() and len(after) <= 18):
        raise ApplicationError("after: an assignment id (a whole number) is expected.", {"field": "after"})
    return int(after) if after is not None else None


AFTER_PARAMETER = OpenApiParameter(
    "after",
    int,
    required=False,
    description="Prefetch: the task to show after this one of yours (still shown): another task you hold, else a "
    "new one. You hold at most two.",
)


class TaskNextApi(TaskApiView):
    """The task you hold, or a new one; 204 (with `X-Queue-Reason` and `X-Queue-Message`) when none is left."""

    permission_classes = [AllowAny]  # checked below: members, or anyone for a public project

    @extend_schema(
        request=None,
        parameters=[AFTER_PARAMETER],
        responses={
            200: TaskOutputSerializer,
            204: OpenApiResponse(description="No task left for you; `X-Queue-Reason` and `X-Queue-Message` say why."),
            429: OpenApiResponse(description="A crowd participant over the project's rate limit."),
        },
    )
    def post(self, request: Request, slug: str) -> ApiResponse:
        after = _after_param(request)
        user = request.user
        new_participant = None
        if user.is_authenticated:
            project = access_project(user=user, project_slug=slug)
        else:
            project = Project.objects.filter(slug=slug, visibility=Visibility.PUBLIC).first()
            if project is None:
                raise exceptions.NotAuthenticated()
            # Creating an account from a cookie-less browser is a state change: it must come from our page.
            ParticipantAuthentication().enforce_csrf(request)
            new_participant = services.participant_create(project=project, address=request.META.get("REMOTE_ADDR", ""))
            user = new_participant.user
        assignment = services.assignment_next(project=project, annotator=user, after=after)
        response = (
            _empty(project, user) if assignment is None else ApiResponse(task_payload(assignment, project=project))
        )
        if new_participant is not None:
            response.set_cookie(
                PARTICIPANT_COOKIE,
                new_participant.cookie_value,
                max_age=COOKIE_MAX_AGE,
                httponly=True,
                samesite="Lax",
                secure=request.is_secure(),
            )
        return response


class TaskDetailApi(TaskApiView):
    """One of your tasks, with your answer if you submitted it (to go back and amend it)."""

    permission_classes = [IsAuthenticated]

    @extend_schema(responses=TaskOutputSerializer)
    def get(self, request: Request, slug: str, assignment_id: int) -> ApiResponse:
        project = access_project(user=request.user, project_slug=slug)
        assignment = Assignment.objects.filter(pk=assignment_id, project=project, annotator=request.user).first()
        if assignment is None:
            raise exceptions.NotFound("No such task of yours.")
        return ApiResponse(task_payload(assignment, project=project))


class TaskPreviousApi(TaskApiView):
    """Your task submitted just before `before` (your latest without it); 204 when there is none."""

    permission_classes = [IsAuthenticated]

    @extend_schema(
        parameters=[OpenApiParameter("before", int, required=False, description="An assignment id of yours.")],
        responses={200: TaskOutputSerializer, 204: OpenApiResponse(description="No earlier task of yours.")},
    )
    def get(self, request: Request, slug: str) -> ApiResponse:
        project = access_project(user=request.user, project_slug=slug)
        before = None
        if request.query_params.get("before", "").isdigit():
            before = Assignment.objects.filter(
                pk=int(request.query_params["before"]), project=project, annotator=request.user
            ).first()
        previous = selectors.assignment_previous(project=project, annotator=request.user, before=before)
        if previous is None:
            return ApiResponse(status=status.HTTP_204_NO_CONTENT)
        return ApiResponse(task_payload(previous, project=project))


class TaskProgressApi(TaskApiView):
    """The project's progress and yours: tasks done, all tasks, how many you submitted, your quota left."""

    permission_classes = [IsAuthenticated]

    @extend_schema_serializer(component_name="TaskProgressOutput")
    class OutputSerializer(serializers.Serializer):
        done = serializers.IntegerField(help_text="Tasks annotated as many times as the project's overlap.")
        total = serializers.IntegerField()
        mine = serializers.IntegerField(help_text="Tasks you submitted.")
        quota_left = serializers.IntegerField(
            allow_null=True, help_text="Answers you may still give; null where the project has no quota."
        )

    @extend_schema(responses=OutputSerializer)
    def get(self, request: Request, slug: str) -> ApiResponse:
        project = access_project(user=request.user, project_slug=slug)
        progress = selectors.project_progress(project=project, user=request.user)
        return ApiResponse({**progress, "quota_left": quota_left(project=project, annotator=request.user)})


class TaskSubmitApi(TaskApiView):
    """Answer a task (or change your answer to one you submitted). The fields depend on the project's kind:
    pairwise `choice` (a, b, tie, both_bad), `strength` (1 slightly, 2 clearly), `reason`; correction
    `segments` [{start, end, type, replacement, original}] (none: no hallucination); rating `level`
    (index into the scale); ranking `order` (response ids, best first); a correction that took the AI
    labeler's suggested correction says so with `ai_rewrite_used`. A repeated `client_request_id`
    stores nothing new and answers as the first time."""

    permission_classes = [IsAuthenticated]
    parser_classes = [CheckedJSONParser, FormParser]

    @extend_schema_serializer(component_name="TaskSubmitInput")
    class InputSerializer(ReusedFieldsSerializer):
        client_request_id = serializers.CharField(
            max_length=64,
            help_text="Required: an id the client makes once per answer; a repeat stores nothing new.",
        )
        time_spent_ms = serializers.IntegerField(required=False, default=0, min_value=0)
        choice = serializers.CharField(required=False, max_length=10)
        strength = serializers.IntegerField(required=False, default=1)
        reason = serializers.CharField(required=False, default="", allow_blank=True, max_length=rules.MAX_REASON_CHARS)
        segments = serializers.ListField(child=serializers.DictField(), required=False, max_length=200)
        level = serializers.IntegerField(required=False)
        order = serializers.ListField(child=serializers.IntegerField(), required=False, max_length=100)
        ai_rewrite_used = serializers.BooleanField(
            required=False, default=False, help_text="Correction: the annotator took the AI labeler's rewrite."
        )

    @extend_schema_serializer(component_name="TaskSubmitOutput")
    class OutputSerializer(serializers.Serializer):
        """The stored answer: the fields of the project's kind (as `answer` of a task)."""

        id = serializers.IntegerField(help_text="The annotation's id.")
        assignment_id = serializers.IntegerField()
        choice = serializers.CharField(required=False, help_text="Pairwise.")
        strength = serializers.IntegerField(required=False, help_text="Pairwise.")
        reason = serializers.CharField(required=False, help_text="Pairwise.")
        segments = serializers.ListField(child=serializers.DictField(), required=False, help_text="Correction.")
        corrected_text = serializers.CharField(required=False, help_text="Correction: the answer with the fixes.")
        level = serializers.IntegerField(required=False, help_text="Rating.")
        order = serializers.ListField(child=serializers.IntegerField(), required=False, help_text="Ranking.")
        next_task = TaskOutputSerializer(
            required=False,
            allow_null=True,
            help_text="With `?next=1`: your next task, as `tasks/next/` gives it (null when none is left).",
        )
        next_empty = QueueEmptySerializer(
            required=False, allow_null=True, help_text="With `?next=1` and no next task: why."
        )

    KIND_FIELDS = {
        ProjectKind.PAIRWISE: ("choice", "strength", "reason"),
        ProjectKind.CORRECTION: ("segments",),
        ProjectKind.RATING: ("level",),
        ProjectKind.RANKING: ("order",),
    }

    @extend_schema(
        request=InputSerializer,
        parameters=[
            OpenApiParameter(
                "next",
                bool,
                required=False,
                description="Also lease your next task and answer it as `next_task` (with `after`, the one after that "
                "task of yours): one request per answer instead of two.",
            ),
            AFTER_PARAMETER,
        ],
        responses={201: OutputSerializer},
    )
    def post(self, request: Request, slug: str, assignment_id: int) -> ApiResponse:
        project = access_project(user=request.user, project_slug=slug)
        want_next = request.query_params.get("next", "").lower() in ("1", "true", "yes")
        after = _after_param(request) if want_next else None
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        fields = self.KIND_FIELDS[project.kind]
        if fields[0] not in values:
            raise ApplicationError(f"A {project.kind} answer needs '{fields[0]}'.", {"field": fields[0]})
        from annotation.services.suggestions import ai_suggestion_use_record, rewrite_use_check

        rewrite_use_check(project=project, rewrite_used=values["ai_rewrite_used"])
        annotation = SUBMITTERS[project.kind](
            assignment_id=assignment_id,
            annotator=request.user,
            project=project,
            client_request_id=values["client_request_id"],
            time_spent_ms=values["time_spent_ms"],
            **{name: values[name] for name in fields},
        )
        if project.show_ai_suggestions:  # what the annotator did with the suggestion, beside their answer
            ai_suggestion_use_record(project=project, annotation=annotation, rewrite_used=values["ai_rewrite_used"])
        body = {
            "id": annotation.pk,
            "assignment_id": assignment_id,
            **selectors.annotation_answer(annotation=annotation, kind=project.kind),
        }
        if want_next:
            body.update(_next_after_answer(project=project, user=request.user, after=after))
        return ApiResponse(body, status=status.HTTP_201_CREATED)


def _next_after_answer(*, project: Project, user: Any, after: int | None) -> dict[str, Any]:
    """`next_task` and `next_empty` of a submit that asked for its next task. The answer is stored by now, so
    nothing here may turn the reply into an error: a crowd participant over the rate limit gets no next task
    and the reason (`rate_limited`), as the page would from `tasks/next/`'s 429."""
    try:
        assignment = services.assignment_next(project=project, annotator=user, after=after)
    except RateLimited as error:
        return {"next_task": None, "next_empty": {"reason": "rate_limited", "message": error.message}}
    if assignment is None:
        return {"next_task": None, "next_empty": _queue_empty(project, user)}
    return {"next_task": task_payload(assignment, project=project), "next_empty": None}


class TaskSkipApi(TaskApiView):
    """Give a task back unanswered; you will not be given it again."""

    permission_classes = [IsAuthenticated]

    @extend_schema_serializer(component_name="TaskSkipOutput")
    class OutputSerializer(serializers.Serializer):
        assignment_id = serializers.IntegerField()
        status = serializers.CharField(help_text="skipped")

    @extend_schema(request=None, responses={200: OutputSerializer})
    def post(self, request: Request, slug: str, assignment_id: int) -> ApiResponse:
        project = access_project(user=request.user, project_slug=slug)
        assignment = services.assignment_skip(assignment_id=assignment_id, annotator=request.user, project=project)
        return ApiResponse({"assignment_id": assignment.pk, "status": assignment.status})
