"""GET /api/v1/projects/{id}/exports/: past exports with their size and when their file expires."""

from datetime import timedelta
from pathlib import Path

import pytest

from labeling import exports
from labeling.models import Export

pytestmark = pytest.mark.django_db


def test_a_written_export_lists_its_size_and_expiry(project, alice, client_for, make_batch, settings):
    make_batch(project, 2)
    settings.EXPORT_RETENTION_HOURS = 48
    done = Export.objects.create(project=project, format="json", requested_by=alice)
    exports.run_export(export_id=done.pk)
    Export.objects.create(project=project, format="csv", requested_by=alice)
    response = client_for(alice).get(f"/api/v1/projects/{project.pk}/exports/")
    assert response.status_code == 200
    queued, written = response.data
    assert queued["status"] == "queued" and queued["expires_at"] is None and queued["download_url"] is None
    done.refresh_from_db()
    assert written["status"] == "done" and written["byte_size"] == done.byte_size > 0
    assert written["expires_at"] == (done.finished_at + timedelta(hours=48)).isoformat().replace("+00:00", "Z")
    settings.EXPORT_RETENTION_HOURS = 0
    kept = client_for(alice).get(f"/api/v1/projects/{project.pk}/exports/").data[1]
    assert kept["expires_at"] is None
    (Path(settings.MEDIA_ROOT) / done.file).unlink()  # the filesystem storage of the tests
