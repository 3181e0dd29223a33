"""Create (or update the password of) a user: `manage.py createuser alice --password …`."""

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser


class Command(BaseCommand):
    help = "Create a Winnow user, or reset an existing user's password. Prints the API token."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--password", required=True)
        parser.add_argument("--email", default="")
        parser.add_argument("--staff", action="store_true", help="may use the Django admin")

    def handle(self, *args: Any, **options: Any) -> None:
        from rest_framework.authtoken.models import Token

        if len(options["password"]) < 8:
            raise CommandError("the password must be at least 8 characters")
        user, created = get_user_model().objects.get_or_create(
            username=options["username"], defaults={"email": options["email"]}
        )
        user.set_password(options["password"])
        if options["staff"]:
            user.is_staff = user.is_superuser = True
        user.save()
        token, _ = Token.objects.get_or_create(user=user)
        self.stdout.write(f"{'created' if created else 'updated'} {user.username}; API token {token.key}")
