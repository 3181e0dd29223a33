"""Who may do what: small permission classes resolved against the object's project."""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request

from .models import Batch, Membership, Project, Role, Task


def project_of(obj: Any) -> Project:
    if isinstance(obj, Project):
        return obj
    if isinstance(obj, (Batch, Task)):
        return obj.project
    return obj.project  # any object with a project


def role_in(user: Any, project: Project) -> str | None:
    cache = getattr(user, "_winnow_roles", None)
    if cache is None:
        cache = {}
        user._winnow_roles = cache
    if project.pk not in cache:
        cache[project.pk] = (
            Membership.objects.filter(project_id=project.pk, user=user).values_list("role", flat=True).first()
        )
    return cache[project.pk]


class ProjectPermission(BasePermission):
    """Every project permission needs a signed-in user first (401 otherwise)."""

    def has_permission(self, request: Request, view: Any) -> bool:
        return bool(request.user and request.user.is_authenticated)


class IsProjectMember(ProjectPermission):
    """Members read; what they may change is decided by the view's action."""

    message = "you are not a member of this project"

    def has_object_permission(self, request: Request, view: Any, obj: Any) -> bool:
        return role_in(request.user, project_of(obj)) is not None


class IsProjectOwnerOrReadOnly(ProjectPermission):
    message = "only the project's owners may change it"

    def has_object_permission(self, request: Request, view: Any, obj: Any) -> bool:
        role = role_in(request.user, project_of(obj))
        if role is None:
            return False
        return request.method in SAFE_METHODS or role == Role.OWNER


class IsProjectOwner(ProjectPermission):
    message = "only the project's owners may do this"

    def has_object_permission(self, request: Request, view: Any, obj: Any) -> bool:
        return role_in(request.user, project_of(obj)) == Role.OWNER


class IsProjectReviewer(ProjectPermission):
    message = "only the project's reviewers and owners may do this"

    def has_object_permission(self, request: Request, view: Any, obj: Any) -> bool:
        return role_in(request.user, project_of(obj)) in {Role.REVIEWER, Role.OWNER}
