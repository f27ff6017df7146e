"""REST API: Projects, members and items."""

from django.core.exceptions import PermissionDenied
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response as ApiResponse
from rest_framework.views import APIView

from annotation import selectors, services
from annotation.models import Item, Membership, ProjectKind, Role, Visibility
from annotation.permissions import access_project, access_project_for_management


class ProjectOutputSerializer(serializers.Serializer):
    slug = serializers.SlugField()
    name = serializers.CharField()
    kind = serializers.CharField()
    instructions = serializers.CharField()
    overlap = serializers.IntegerField()
    rating_levels = serializers.ListField(child=serializers.CharField())
    hallucination_types = serializers.ListField(child=serializers.CharField())
    visibility = serializers.CharField()
    show_ai_suggestions = serializers.BooleanField()
    public_quota = serializers.IntegerField()
    public_rate_per_minute = serializers.IntegerField()
    rating_sampling = serializers.CharField()
    rating_top_k = serializers.IntegerField()


class ProjectListApi(APIView):
    """The projects you may see (members see theirs; staff see all); staff create projects."""

    @extend_schema_serializer(component_name="ProjectCreateInput")
    class InputSerializer(serializers.Serializer):
        slug = serializers.SlugField(max_length=80)
        kind = serializers.ChoiceField(choices=ProjectKind.values)
        name = serializers.CharField(max_length=200, required=False, default="")
        instructions = serializers.CharField(required=False, default="", allow_blank=True)
        overlap = serializers.IntegerField(min_value=1, max_value=1000, required=False, default=1)
        visibility = serializers.ChoiceField(choices=Visibility.values, required=False, default=Visibility.MEMBERS)
        show_ai_suggestions = serializers.BooleanField(required=False, default=False)
        rating_levels = serializers.ListField(child=serializers.CharField(), required=False, default=list)
        hallucination_types = serializers.ListField(child=serializers.CharField(), required=False, default=list)
        public_quota = serializers.IntegerField(min_value=0, required=False, default=200)
        public_rate_per_minute = serializers.IntegerField(min_value=0, required=False, default=60)
        rating_sampling = serializers.ChoiceField(choices=["uniform", "adaptive"], required=False, default="uniform")
        rating_top_k = serializers.IntegerField(min_value=1, max_value=1000, required=False, default=10)

    @extend_schema(responses=ProjectOutputSerializer(many=True))
    def get(self, request: Request) -> ApiResponse:
        """The projects you are a member of (staff: every project)."""
        projects = selectors.project_list_for_user(user=request.user)
        return ApiResponse(ProjectOutputSerializer(projects, many=True).data)

    @extend_schema(request=InputSerializer, responses={201: ProjectOutputSerializer})
    def post(self, request: Request) -> ApiResponse:
        """Create a project (staff only); you become its manager."""
        if not request.user.is_staff:
            raise PermissionDenied("Only staff create projects.")
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        project = services.project_create(created_by=request.user, **data.validated_data)
        return ApiResponse(ProjectOutputSerializer(project).data, status=status.HTTP_201_CREATED)


class ProjectDetailApi(APIView):
    """One project's settings and progress; its managers change the settings."""

    @extend_schema_serializer(component_name="ProjectUpdateInput")
    class UpdateSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=200, required=False)
        instructions = serializers.CharField(required=False, allow_blank=True)
        overlap = serializers.IntegerField(min_value=1, max_value=1000, required=False)
        visibility = serializers.ChoiceField(choices=Visibility.values, required=False)
        show_ai_suggestions = serializers.BooleanField(required=False)
        public_quota = serializers.IntegerField(min_value=0, required=False)
        public_rate_per_minute = serializers.IntegerField(min_value=0, required=False)
        rating_sampling = serializers.ChoiceField(choices=["uniform", "adaptive"], required=False)
        rating_top_k = serializers.IntegerField(min_value=1, max_value=1000, required=False)

    @extend_schema(responses=ProjectOutputSerializer)
    def get(self, request: Request, slug: str) -> ApiResponse:
        """The project's settings, with `progress` (tasks done, total, and how many you submitted)."""
        project = access_project(user=request.user, project_slug=slug)
        body = ProjectOutputSerializer(project).data
        body["progress"] = selectors.project_progress(project=project, user=request.user)
        return ApiResponse(body)

    @extend_schema(request=UpdateSerializer, responses=ProjectOutputSerializer)
    def patch(self, request: Request, slug: str) -> ApiResponse:
        """Change settings (managers); a new overlap puts tasks back into the queue or takes them out."""
        project = access_project_for_management(user=request.user, project_slug=slug)
        data = self.UpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        project = services.project_update(project=project, **data.validated_data)
        return ApiResponse(ProjectOutputSerializer(project).data)


class ProjectStatsApi(APIView):
    """The dashboard's figures: task progress, annotations per hour, time per task, per annotator, and the AI
    labeler's agreement with people beside people's with each other (`labeler_agreement`, null for none)."""

    @extend_schema(
        responses={
            200: OpenApiResponse(
                OpenApiTypes.OBJECT,
                description="Progress, per annotator, per hour, time per task, and `labeler_agreement`.",
            )
        }
    )
    def get(self, request: Request, slug: str) -> ApiResponse:
        project = access_project_for_management(user=request.user, project_slug=slug)
        from annotation.selectors_labeler import labeler_agreement_data

        return ApiResponse(
            {
                **selectors.project_dashboard(project=project),
                "labeler_agreement": labeler_agreement_data(project=project),
            }
        )


class ProjectMemberOutputSerializer(serializers.Serializer):
    username = serializers.CharField()
    email = serializers.CharField(allow_blank=True)
    role = serializers.ChoiceField(choices=Role.values)


def _member_row(membership: Membership) -> dict[str, str]:
    user = membership.user
    return {"username": user.get_username(), "email": getattr(user, "email", "") or "", "role": membership.role}


class ProjectMemberAddApi(APIView):
    """The project's members (GET), or add an existing account by username or email with a role (POST; adding a
    member again changes their role; the last manager stays one). Managers only."""

    @extend_schema_serializer(component_name="ProjectMemberAddInput")
    class InputSerializer(serializers.Serializer):
        username = serializers.CharField(help_text="The username or the email of an existing account.")
        role = serializers.ChoiceField(choices=Role.values, default=Role.ANNOTATOR)

    @extend_schema(responses={200: ProjectMemberOutputSerializer(many=True)})
    def get(self, request: Request, slug: str) -> ApiResponse:
        project = access_project_for_management(user=request.user, project_slug=slug)
        return ApiResponse([_member_row(m) for m in selectors.project_members(project=project)])

    @extend_schema(request=InputSerializer, responses={201: ProjectMemberOutputSerializer})
    def post(self, request: Request, slug: str) -> ApiResponse:
        project = access_project_for_management(user=request.user, project_slug=slug)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        membership = services.project_member_invite(
            project=project,
            username_or_email=data.validated_data["username"],
            role=data.validated_data["role"],
            field="username",
        )
        return ApiResponse(_member_row(membership), status=201)


class ProjectMemberApi(APIView):
    """Take a member out of the project (managers only). Their answers stay; the last manager cannot be removed."""

    @extend_schema(responses={204: None})
    def delete(self, request: Request, slug: str, username: str) -> ApiResponse:
        project = access_project_for_management(user=request.user, project_slug=slug)
        user = services.user_find(username_or_email=username, field="username")
        services.project_member_remove(project=project, user=user)
        return ApiResponse(status=204)


class ItemOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    external_id = serializers.CharField()
    prompt = serializers.CharField()
    image_url = serializers.SerializerMethodField()
    done_count = serializers.IntegerField()

    def get_image_url(self, item: Item) -> str | None:
        return reverse("item-image", args=[item.pk]) if item.image else None


class ItemListApi(APIView):
    """The project's items in import order, paginated (`limit`, `offset`); managers only."""

    @extend_schema(responses=ItemOutputSerializer(many=True))
    def get(self, request: Request, slug: str) -> ApiResponse:
        project = access_project_for_management(user=request.user, project_slug=slug)
        items = Item.objects.filter(project=project).order_by("id")
        from rest_framework.pagination import LimitOffsetPagination

        paginator = LimitOffsetPagination()
        page = paginator.paginate_queryset(items, request, view=self)
        return paginator.get_paginated_response(ItemOutputSerializer(page, many=True).data)
