"""Create (or update the password of) a user: `manage.py createuser alice` asks for the password;
`printf '%s\n' "$PW" | manage.py createuser alice --password-stdin` reads it from standard input.

The password is never an argument: arguments show in `ps`, in shell history and in CI logs.
"""

import argparse
import getpass
import sys
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser


class Command(BaseCommand):
    help = "Create a Winnow user, or reset an existing user's password. Prints the API token."
    stealth_options = ("stdin",)

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--password-stdin", action="store_true",
                            help="read the password from standard input (its first line) instead of asking")
        # Refused with directions, so an old script fails clearly instead of leaving its password in `ps`.
        parser.add_argument("--password", help=argparse.SUPPRESS)
        parser.add_argument("--email", default="")
        parser.add_argument("--staff", action="store_true", help="may sign in to the Django admin (is_staff)")
        parser.add_argument("--superuser", action="store_true", help="may do everything in the Django admin")

    def handle(self, *args: Any, **options: Any) -> None:
        from rest_framework.authtoken.models import Token

        if options["password"] is not None:
            raise CommandError("--password is gone: a password on the command line shows in ps and shell history; "
                               "answer the prompt, or pipe it in with --password-stdin")
        password = self._password(options)
        model = get_user_model()
        user = model.objects.filter(username=options["username"]).first() or model(
            username=options["username"], email=options["email"]
        )
        try:
            validate_password(password, user)
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from exc
        created = user.pk is None
        user.set_password(password)
        if options["staff"] or options["superuser"]:
            user.is_staff = True
        if options["superuser"]:
            user.is_superuser = True
        user.save()
        token, _ = Token.objects.get_or_create(user=user)
        self.stdout.write(f"{'created' if created else 'updated'} {user.username}; API token {token.key}")

    def _password(self, options: dict[str, Any]) -> str:
        stdin = options.get("stdin") or sys.stdin
        if options["password_stdin"]:
            password = stdin.readline().rstrip("\r\n")
            if not password:
                raise CommandError("no password on standard input; pipe one line: printf '%s\\n' \"$PW\" | …")
            return password
        if not stdin.isatty():
            raise CommandError("no terminal to ask for the password; pipe it in with --password-stdin")
        password = getpass.getpass("Password: ")
        if password != getpass.getpass("Password (again): "):
            raise CommandError("the two passwords differ; run the command again")
        return password
