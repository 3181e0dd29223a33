"""Who may do what: one project-role check for every API route and page.

`member_role` and `require_role` raise Django's `Http404` and `PermissionDenied`, so the same check
serves the API (winnow.exceptions turns them into `{detail, code}` 404 and 403 bodies) and the pages
(the styled 404.html and 403.html). A non-member of a project gets 404 on its objects, as if they did
not exist; a member in another role gets 403 saying who may.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import Http404
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


def member_role(user: Any, obj: Any) -> str:
    """The user's role in the project of `obj`; a non-member gets 404, as if the object did not exist,
    so a project's objects never tell a stranger they are there."""
    role = role_in(user, project_of(obj))
    if role is None:
        raise Http404("no such object here: it does not exist or you are not a member of its project")
    return role


def require_role(user: Any, obj: Any, roles: set[str], what: str) -> str:
    """The one role check of every API route and page that is not a viewset action: a non-member of
    the project of `obj` gets 404 (member_role), a member in another role 403 saying who may `what`."""
    role = member_role(user, obj)
    if role not in roles:
        raise PermissionDenied(f"only the project's {' and '.join(sorted(r + 's' for r in roles))} may {what}")
    return role


OWNERS = {Role.OWNER}
REVIEWERS = {Role.OWNER, Role.REVIEWER}
MEMBERS = {Role.OWNER, Role.REVIEWER, Role.ANNOTATOR}


class ProjectPermission(BasePermission):
    """Every project permission needs a signed-in user first (401 otherwise); a non-member of the
    object's project gets 404 (member_role), a member in the wrong role 403 with the message."""

    def has_permission(self, request: Request, view: Any) -> bool:
        return bool(request.user and request.user.is_authenticated)


class IsProjectMember(ProjectPermission):
    """Members read; what they may change is decided by the view's action."""

    message = "you are not a member of this project"

    def has_object_permission(self, request: Request, view: Any, obj: Any) -> bool:
        member_role(request.user, obj)
        return True


class IsProjectOwnerOrReadOnly(ProjectPermission):
    message = "only the project's owners may change it"

    def has_object_permission(self, request: Request, view: Any, obj: Any) -> bool:
        role = member_role(request.user, obj)
        return request.method in SAFE_METHODS or role == Role.OWNER


class IsProjectOwner(ProjectPermission):
    message = "only the project's owners may do this"

    def has_object_permission(self, request: Request, view: Any, obj: Any) -> bool:
        return member_role(request.user, obj) == Role.OWNER


class IsProjectReviewer(ProjectPermission):
    message = "only the project's reviewers and owners may do this"

    def has_object_permission(self, request: Request, view: Any, obj: Any) -> bool:
        return member_role(request.user, obj) in {Role.REVIEWER, Role.OWNER}
