"""Accounts an owner creates for the people they add to a project.

The password is generated here and returned once, to be handed to the new member; only its hash is
stored, so nobody can read it again afterwards (a lost one is reset by creating it anew in the admin
or with `manage.py createuser NAME --password …`).
"""

from __future__ import annotations

import secrets

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction

from winnow.exceptions import Conflict, InvalidInput

from .models import Membership, Project

User = get_user_model()
PASSWORD_BYTES = 12  # 16 URL-safe characters


def generate_password() -> str:
    return secrets.token_urlsafe(PASSWORD_BYTES)


def create_account(*, project: Project, username: str, role: str, email: str = "") -> tuple[Membership, str]:
    """Create an active user with a generated password and make them a member of `project` with `role`.

    Returns the membership and the password in clear, which is never stored. Refused (409) when the
    username is taken: an existing account is added as a member instead.
    """
    username = username.strip()
    field = User._meta.get_field(User.USERNAME_FIELD)
    try:
        field.run_validators(username)
    except DjangoValidationError as exc:
        raise InvalidInput(f"username {username!r}: {' '.join(exc.messages)}", code="bad_username") from exc
    if not username:
        raise InvalidInput("give the new account a username", code="bad_username")
    taken = Conflict(
        f"an account named {username!r} exists already; add it as a member instead", code="username_taken"
    )
    if User.objects.filter(username__iexact=username).exists():
        raise taken
    password = generate_password()
    try:
        with transaction.atomic():
            user: AbstractBaseUser = User.objects.create_user(username=username, email=email, password=password)
            membership = Membership.objects.create(project=project, user=user, role=role)
    except IntegrityError as exc:  # the same name created by a concurrent request
        raise taken from exc
    return membership, password
