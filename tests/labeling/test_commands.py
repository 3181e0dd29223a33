"""Management commands: the demo seed and createuser."""

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


def test_createuser_creates_and_resets(capsys, django_user_model):
    call_command("createuser", "erin", "--password", "long-enough-pw")
    assert django_user_model.objects.get(username="erin").check_password("long-enough-pw")
    call_command("createuser", "erin", "--password", "another-long-pw")
    assert django_user_model.objects.get(username="erin").check_password("another-long-pw")
    assert "API token" in capsys.readouterr().out
    with pytest.raises(CommandError, match="at least 8"):
        call_command("createuser", "frank", "--password", "short")
