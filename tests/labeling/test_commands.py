"""Management commands: the demo seed and createuser."""

import io

import pytest
from django.core.management import CommandError, call_command

from labeling.models import Batch, Project, Task

pytestmark = pytest.mark.django_db


def test_seed_demo_creates_the_demo_once(capsys, django_user_model):
    call_command("seed_demo")
    call_command("seed_demo")
    project = Project.objects.get(name="Anime vs photo")
    assert Project.objects.count() == 1
    assert {(c.label, c.domain) for c in project.choices.all()} == {
        ("Photorealistic", "A"), ("Anime", "B"), ("Neither", "excluded")
    }
    assert all(c.description and c.long_hint for c in project.choices.all())
    assert set(project.memberships.values_list("user__username", "role")) == {
        ("alice", "owner"), ("bob", "annotator"), ("dave", "annotator"), ("carol", "reviewer")
    }
    batch = Batch.objects.get(project=project)
    assert batch.kind == "calibration" and batch.status == "finalized"
    assert Task.objects.filter(batch=batch, status="queued").count() == 24
    out = capsys.readouterr().out
    assert "winnow-demo" in out and "alice" in out
    assert django_user_model.objects.get(username="bob").check_password("winnow-demo")


def createuser(*args, password="long-enough-pw"):  # noqa: S107 - a test password
    call_command("createuser", *args, "--password-stdin", stdin=io.StringIO(password + "\n"))


def test_createuser_reads_the_password_from_stdin_and_resets_it(capsys, django_user_model):
    createuser("erin")
    assert django_user_model.objects.get(username="erin").check_password("long-enough-pw")
    createuser("erin", password="another-long-pw")
    erin = django_user_model.objects.get(username="erin")
    assert erin.check_password("another-long-pw")
    assert (erin.is_staff, erin.is_superuser) == (False, False)
    assert "API token" in capsys.readouterr().out
    with pytest.raises(CommandError, match="at least 8"):
        createuser("frank", password="short")
    assert not django_user_model.objects.filter(username="frank").exists()


def test_createuser_takes_no_password_argument(django_user_model):
    with pytest.raises(CommandError, match="--password is gone.*--password-stdin"):
        call_command("createuser", "erin", "--password", "long-enough-pw")
    assert not django_user_model.objects.filter(username="erin").exists()


def test_without_a_terminal_or_stdin_flag_createuser_says_how_to_give_the_password(django_user_model):
    with pytest.raises(CommandError, match="--password-stdin"):
        call_command("createuser", "erin", stdin=io.StringIO(""))
    with pytest.raises(CommandError, match="no password on standard input"):
        call_command("createuser", "erin", "--password-stdin", stdin=io.StringIO(""))
    assert not django_user_model.objects.exists()


def test_createuser_asks_on_a_terminal(monkeypatch, django_user_model):
    """getpass stands in for the person at the terminal: a test has no terminal to type into."""
    import getpass

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    answers = iter(["typed-password-1", "typed-password-1", "one-password-2", "another-pass-3"])
    monkeypatch.setattr(getpass, "getpass", lambda prompt="": next(answers))
    call_command("createuser", "erin", stdin=Terminal())
    assert django_user_model.objects.get(username="erin").check_password("typed-password-1")
    with pytest.raises(CommandError, match="differ"):
        call_command("createuser", "erin", stdin=Terminal())
    assert django_user_model.objects.get(username="erin").check_password("typed-password-1")


def test_staff_is_not_superuser(django_user_model):
    createuser("sam", "--staff")
    createuser("root", "--superuser")
    assert django_user_model.objects.filter(username="sam", is_staff=True, is_superuser=False).exists()
    assert django_user_model.objects.filter(username="root", is_staff=True, is_superuser=True).exists()
