"""API tokens: the plain-SQL token check finds the same user the ORM would, and refuses as DRF does."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.test import APIClient

from labeling.authentication import TokenAuthentication

pytestmark = pytest.mark.django_db


def test_a_token_authenticates_its_user_with_every_field_as_the_orm_reads_it(alice: Any, bob: Any) -> None:
    alice.first_name, alice.is_staff = "Alice", True
    alice.save()
    Token.objects.create(user=bob)  # another row the lookup must not pick
    token = Token.objects.create(user=alice)
    user, found = TokenAuthentication().authenticate_credentials(token.key)
    expected = get_user_model().objects.get(pk=alice.pk)
    for field in get_user_model()._meta.concrete_fields:
        assert getattr(user, field.attname) == getattr(expected, field.attname), field.name
    assert user.is_staff is True and user.date_joined.tzinfo is not None
    assert (found.key, found.user_id, found.created) == (token.key, alice.pk, Token.objects.get(pk=token.key).created)
    assert found.user is user


def test_unknown_and_inactive_tokens_are_refused_with_drfs_messages(alice: Any) -> None:
    token = Token.objects.create(user=alice)
    with pytest.raises(AuthenticationFailed, match="Invalid token"):
        TokenAuthentication().authenticate_credentials("0" * 40)
    alice.is_active = False
    alice.save()
    with pytest.raises(AuthenticationFailed, match="User inactive or deleted"):
        TokenAuthentication().authenticate_credentials(token.key)


def test_the_api_answers_401_for_a_bad_token_and_200_for_a_good_one(alice: Any) -> None:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token not-a-token")
    refused = client.get("/api/v1/projects/")
    assert refused.status_code == 401 and "Invalid token" in refused.data["detail"]
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=alice).key}")
    assert client.get("/api/v1/projects/").status_code == 200
