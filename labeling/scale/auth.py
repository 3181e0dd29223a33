"""Who is calling the Scale-compatible API, and what they may see: the API key, and the native role rules."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from django.db.models import QuerySet
from rest_framework import exceptions as drf_exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.authtoken.models import Token
from rest_framework.request import Request

from winnow.exceptions import InvalidInput, NotAllowed, NotFound

from ..leasing import MAX_ID
from ..models import (
    Batch,
    Project,
    Role,
    Task,
)
from ..permissions import role_in
from .shapes import task_queryset


class ScaleKeyAuthentication(BaseAuthentication):
    """The API key as the basic-auth username (password empty), as Scale's client sends it; a Bearer
    header with the key is accepted too. The key is the user's Winnow API token."""

    def authenticate(self, request: Request) -> tuple[Any, Token] | None:
        parts = get_authorization_header(request).split()
        if not parts:
            return None
        scheme = parts[0].lower()
        if scheme == b"basic" and len(parts) == 2:
            try:
                key = base64.b64decode(parts[1], validate=True).decode().partition(":")[0]
            except (binascii.Error, UnicodeDecodeError) as exc:
                raise drf_exceptions.AuthenticationFailed("malformed basic auth header; send the API key as the username") from exc
        elif scheme == b"bearer" and len(parts) == 2:
            key = parts[1].decode(errors="replace")
        else:
            return None
        token = Token.objects.select_related("user").filter(key=key).first()
        if token is None or not token.user.is_active:
            raise drf_exceptions.AuthenticationFailed(
                "invalid API key: use your Winnow API token (POST /api/v1/auth/token/) as the basic-auth username"
            )
        return token.user, token

    def authenticate_header(self, request: Request) -> str:
        return 'Basic realm="Winnow"'


def _visible_projects(user: Any) -> QuerySet[Project]:
    return Project.objects.for_user(user)


def project_by_name(user: Any, name: str) -> Project:
    matches = list(_visible_projects(user).filter(name=name).order_by("id")[:2])
    if not matches:
        raise NotFound(f"no project named {name!r} is visible to this API key")
    if len(matches) > 1:
        raise InvalidInput(
            f"more than one of your projects is named {name!r}; rename one (PATCH /api/v1/projects/{{id}}/) so "
            "Scale-style names are unique"
        )
    return matches[0]


def batch_by_name(user: Any, name: str, project: Project | None = None) -> Batch:
    batches = Batch.objects.alive().select_related("project").filter(name=name, project__in=_visible_projects(user))
    if project is not None:
        batches = batches.filter(project=project)
    matches = list(batches.order_by("id")[:2])
    if not matches:
        raise NotFound(f"no batch named {name!r} is visible to this API key")
    if len(matches) > 1:
        raise InvalidInput(f"batch name {name!r} is used in several of your projects; pass `project` to choose one")
    return matches[0]


OWNER = {Role.OWNER}
REVIEWERS = {Role.OWNER, Role.REVIEWER}
ANNOTATORS_LEASE = (
    "annotators see tasks only by leasing them (POST /api/v1/projects/{id}/next-tasks/): a task's details "
    "and listings show gold tasks and other people's answers"
)


def readable_tasks(user: Any) -> QuerySet[Task]:
    """Tasks of the projects where the user is an owner or a reviewer, as the native task listing
    scopes them. One filter() call, so user and role match the same membership row."""
    return task_queryset().filter(
        project__memberships__user=user, project__memberships__role__in=REVIEWERS, project__deleted_at__isnull=True
    )


def task_by_id(user: Any, task_id: str, *, roles: set[str] = REVIEWERS, what: str = "read tasks") -> Task:
    """The task, for a caller whose role in its project is one of `roles`: 404 for a task of a project
    the caller is not a member of (as for one that does not exist), 403 for a member in another role."""
    task = None
    if task_id.isascii() and task_id.isdigit() and int(task_id) <= MAX_ID:
        task = task_queryset().filter(pk=int(task_id), project__in=_visible_projects(user)).first()
    if task is None:
        raise NotFound(f"no task {task_id!r} is visible to this API key")
    role = role_in(user, task.project)
    if role not in roles:
        if role == Role.ANNOTATOR and roles == REVIEWERS:
            raise NotAllowed(ANNOTATORS_LEASE)
        require_role(user, task.project, roles, what)
    return task


def require_role(user: Any, project: Project, roles: set[str], what: str) -> None:
    if role_in(user, project) not in roles:
        raise NotAllowed(f"only the project's {' and '.join(sorted(r + 's' for r in roles))} may {what}")




