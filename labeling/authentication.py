"""API token authentication with one plain SQL read.

DRF's TokenAuthentication builds an ORM query (token joined to its user) on every request; for the
annotator's per-image requests that query building cost more Python time than the lease itself.
This reads the same row with SQL prepared once from the models' metadata, and refuses exactly as
DRF does (unknown token, inactive user).
"""

from __future__ import annotations

from functools import cache
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.db import connection
from django.utils.translation import gettext_lazy as _
from rest_framework import authentication, exceptions
from rest_framework.authtoken.models import Token

from . import hotpath
from .hotpath import loaded


@cache
def _token_sql() -> str:
    """SELECT of a token's user (every concrete field) and the token's fields, by key."""
    user_model = get_user_model()
    quote = connection.ops.quote_name
    columns = [f"u.{quote(f.column)}" for f in user_model._meta.concrete_fields]
    columns += [f"t.{quote(f.column)}" for f in Token._meta.concrete_fields]
    return (
        f"SELECT {', '.join(columns)} FROM {quote(Token._meta.db_table)} t "  # noqa: S608 (names from the models)
        f"JOIN {quote(user_model._meta.db_table)} u "
        f"ON u.{quote(user_model._meta.pk.column)} = t.{quote(Token._meta.get_field('user').column)} "
        f"WHERE t.{quote(Token._meta.pk.column)} = %s"
    )


class TokenAuthentication(authentication.TokenAuthentication):
    """`Authorization: Token <key>`, as DRF's, read with one plain SQL statement."""

    def authenticate_credentials(self, key: str) -> tuple[AbstractBaseUser, Any]:
        with connection.cursor() as cursor:
            hotpath.execute(cursor, "winnow_token_user", _token_sql(), [key])
            row = cursor.fetchone()
        if row is None:
            raise exceptions.AuthenticationFailed(_("Invalid token."))
        user_model = get_user_model()
        user_fields = user_model._meta.concrete_fields
        user = loaded(user_model, {f.attname: v for f, v in zip(user_fields, row, strict=False)})
        token = loaded(Token, {f.attname: v for f, v in zip(Token._meta.concrete_fields, row[len(user_fields):], strict=True)})
        token.user = user
        if not user.is_active:
            raise exceptions.AuthenticationFailed(_("User inactive or deleted."))
        return user, token
