"""Pages. Templates render the shell; the ES modules in frontend/ call the same API as clients."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.urls import NoReverseMatch, reverse

from .models import Project, Role, Task
from .permissions import MEMBERS, OWNERS, REVIEWERS, require_role, role_in


def may_read_image(user: Any, parts: list[str]) -> bool:
    """Images (assets/, thumbs/): members of a live project with a task on that image (one image
    uploaded to two projects is readable from both). A rule of winnow.media, registered in apps.py."""
    sha256 = parts[-1].split(".", 1)[0]
    return Task.objects.filter(
        asset__sha256=sha256, project__memberships__user=user, project__deleted_at__isnull=True
    ).exists()


def may_read_project_file(user: Any, parts: list[str]) -> bool:
    """Split manifests (splits/<project>/): the project's members; exports (exports/<project>/): its
    owners, as the API's download endpoint allows. A rule of winnow.media, registered in apps.py."""
    folder, key = parts[0], parts[1]
    if not (key.isascii() and key.isdigit()):
        return False
    project = Project.objects.alive().filter(pk=int(key)).first()
    role = None if project is None else role_in(user, project)
    return role is not None and (folder == "splits" or role == Role.OWNER)


# The reviewer pages are built separately; the navigation links to the first of these names that resolves.
REVIEW_URL_NAMES = ("labeling:review", "review")
# Tasks the annotator page holds beyond the one on screen, images preloaded.
ANNOTATE_LOOKAHEAD = 3
GRID_SIZES = (24, 36, 48, 60)
ROLE_HEADINGS = {Role.OWNER: "Projects you own", Role.REVIEWER: "Projects you review", Role.ANNOTATOR: "Projects you label"}


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """The signed-in user's projects, grouped by their role in each."""
    memberships = (
        request.user.memberships.filter(project__deleted_at__isnull=True).select_related("project").order_by("project__name")
    )
    groups = []
    for role, heading in ROLE_HEADINGS.items():
        rows = [{"membership": m, "review_url": review_url(m.project, m.role)} for m in memberships if m.role == role]
        if rows:
            groups.append({"role": role, "heading": heading, "rows": rows})
    return render(request, "labeling/home.html", {"memberships": memberships, "groups": groups})


def review_url(project: Project, role: str | None) -> str | None:
    """The reviewer pages' address for this project, once those pages exist (they register the URL name)."""
    if role not in (Role.REVIEWER, Role.OWNER):
        return None
    for name in REVIEW_URL_NAMES:
        try:
            return reverse(name, args=[project.pk])
        except NoReverseMatch:
            continue
    return None


def project_page(request: HttpRequest, project: Project, template: str, *, roles: set[str] = MEMBERS,
                 what: str = "open this page", extra: dict[str, Any] | None = None) -> HttpResponse:
    """Render a project's page for a member in one of `roles`: the one role check of the API
    (permissions.require_role), so a stranger gets the styled 404 and a member in another role the 403."""
    role = require_role(request.user, project, roles, what)
    context = {
        "project": project,
        "role": role,
        "is_owner": role == Role.OWNER,
        "review_url": review_url(project, role),
        **(extra or {}),
    }
    return render(request, template, context)


def _project_page(request: HttpRequest, pk: int, template: str, *, roles: set[str] = MEMBERS,
                  extra: dict[str, Any] | None = None) -> HttpResponse:
    project = get_object_or_404(Project.objects.alive(), pk=pk)
    return project_page(request, project, template, roles=roles, extra=extra)


# The new-project form starts from the model's defaults, so the page and the API never disagree.
NEW_PROJECT_FIELDS = ("overlap", "lease_seconds", "gold_rate", "min_gold_accuracy", "min_gold_answers",
                      "audit_sample_size", "max_error_rate")


@login_required
def new_project(request: HttpRequest) -> HttpResponse:
    """Any signed-in user may create a project (and becomes its owner); the module posts it to the API."""
    defaults = {name: Project._meta.get_field(name).get_default() for name in NEW_PROJECT_FIELDS}
    question = Project._meta.get_field("question").get_default()
    return render(request, "labeling/new_project.html", {"defaults": defaults, "default_question": question})


@login_required
def annotate(request: HttpRequest, pk: int) -> HttpResponse:
    """One large image at a time, answered with one key; the module prefetches what comes next."""
    return _project_page(request, pk, "labeling/annotate.html", extra={"lookahead": ANNOTATE_LOOKAHEAD})


@login_required
def grid(request: HttpRequest, pk: int) -> HttpResponse:
    """A page of thumbnails: select look-alikes, give them all one answer with one key."""
    raw = request.GET.get("size", "48")
    size = int(raw) if raw.isdigit() and int(raw) in GRID_SIZES else 48
    return _project_page(request, pk, "labeling/grid.html", extra={"size": size, "sizes": GRID_SIZES})


@login_required
def project_settings(request: HttpRequest, pk: int) -> HttpResponse:
    """Owner page: settings and the taxonomy editor."""
    return _project_page(request, pk, "labeling/settings.html", roles=OWNERS)


@login_required
def batches(request: HttpRequest, pk: int) -> HttpResponse:
    """Owner page: batches with their progress, new batches and uploads."""
    return _project_page(request, pk, "labeling/batches.html", roles=OWNERS)


@login_required
def members(request: HttpRequest, pk: int) -> HttpResponse:
    """Owner page: members and roles, new accounts, and each annotator's figures with pause and reinstate."""
    return _project_page(request, pk, "labeling/members.html", roles=OWNERS,
                         extra={"signup_enabled": settings.WINNOW_SIGNUP_ENABLED})


@login_required
def tasks(request: HttpRequest, pk: int) -> HttpResponse:
    """Owner page, the data manager: every task with filters, a detail drawer and bulk actions."""
    return _project_page(request, pk, "labeling/tasks.html", roles=OWNERS)


@login_required
def quality(request: HttpRequest, pk: int) -> HttpResponse:
    """Owner page: calibration report, gold accuracy over time, every batch's audit against the acceptance line."""
    return _project_page(request, pk, "labeling/quality.html", roles=OWNERS)


@login_required
def exports(request: HttpRequest, pk: int) -> HttpResponse:
    """Owner page: start a background export in any format, follow its progress, download past ones."""
    return _project_page(request, pk, "labeling/exports.html", roles=OWNERS,
                         extra={"retention_hours": settings.EXPORT_RETENTION_HOURS})


@login_required
def webhooks(request: HttpRequest, pk: int) -> HttpResponse:
    """Owner page: webhooks, the signing secret and the delivery log."""
    from .models import WebhookEvent

    return _project_page(request, pk, "labeling/webhooks.html", roles=OWNERS,
                         extra={"events": WebhookEvent.choices})


@login_required
def review(request: HttpRequest, pk: int) -> HttpResponse:
    """Reviewers audit sampled answers; owners also confirm or correct calibration answers here."""
    project = get_object_or_404(Project.objects.alive(), pk=pk)
    require_role(request.user, project, REVIEWERS, "review")
    calibration = list(
        project.batches.alive().filter(kind="calibration").exclude(status__in=["open", "finalized"]).values("id", "name")
    )
    return project_page(request, project, "labeling/review.html", roles=REVIEWERS, what="review",
                        extra={"calibration_batches": calibration})
