"""Uploading images and zip archives to a batch: every item is answered, bad ones never stop the rest."""

import io
import stat
import zipfile
from pathlib import Path

import pytest
from django.conf import settings
from PIL import Image

from labeling.models import Asset, Task
from tests.conftest import jpeg_bytes, png_bytes, zip_bytes

# A member in another role is told who may (403); a stranger learns nothing, not even that it exists (404).
REFUSED = {"bob": 403, "carol": 403, "mallory": 404}

pytestmark = pytest.mark.django_db


@pytest.fixture
def batch(project, alice, client_for):
    response = client_for(alice).post(f"/api/v1/projects/{project.pk}/batches/", {"name": "cal", "kind": "calibration"})
    assert response.status_code == 201, response.data
    return response.data["id"]


def upload(client, batch_id, files):
    return client.post(
        f"/api/v1/batches/{batch_id}/tasks/",
        {"files": [_named(name, data) for name, data in files]},
        format="multipart",
    )


def _named(name, data):
    f = io.BytesIO(data)
    f.name = name
    return f


def media_files():
    root = Path(settings.MEDIA_ROOT)
    return {p.relative_to(root) for p in root.rglob("*") if p.is_file()}


def test_it_stores_measures_and_thumbnails_uploaded_images(batch, alice, client_for):
    response = upload(client_for(alice), batch, [("a.png", png_bytes(1, 300)), ("b.jpg", jpeg_bytes(2, 64))])
    assert response.status_code == 201
    assert response.data["summary"] == {"created": 2, "duplicate": 0, "rejected": 0}
    task = Task.objects.get(pk=response.data["items"][0]["task_id"])
    assert task.asset.width == 300 and task.asset.format == "PNG"
    assert task.source_name == "a.png"
    thumb = Image.open(Path(settings.MEDIA_ROOT) / task.asset.thumbnail.name)
    assert max(thumb.size) == settings.THUMBNAIL_SIZE
    detail = client_for(alice).get(f"/api/v1/tasks/{task.pk}/")
    assert detail.data["asset"]["sha256"] == task.asset.sha256
    image = client_for(alice).get(detail.data["asset"]["image_url"])
    assert image.status_code == 200
    assert b"".join(image.streaming_content) == png_bytes(1, 300)


def test_the_same_image_twice_makes_one_asset_and_one_task(batch, alice, client_for):
    response = upload(client_for(alice), batch, [("a.png", png_bytes(1)), ("copy.png", png_bytes(1))])
    statuses = [i["status"] for i in response.data["items"]]
    assert statuses == ["created", "duplicate"]
    assert response.data["items"][1]["task_id"] == response.data["items"][0]["task_id"]
    assert Asset.objects.count() == 1 and Task.objects.count() == 1


def test_bad_files_are_rejected_with_reasons_and_the_rest_is_stored(batch, alice, client_for, settings):
    settings.INGEST_MAX_FILE_BYTES = 200_000
    settings.INGEST_MAX_PIXELS = 1_000_000
    good = png_bytes(3)
    truncated = jpeg_bytes(4)[:300]
    bomb = io.BytesIO()
    Image.new("L", (2000, 2000)).save(bomb, "PNG")  # 4 Mpx in a few kB: a decompression bomb under this limit
    big = b"\x89PNG" + b"\0" * 250_000
    before = media_files()
    response = upload(
        client_for(alice),
        batch,
        [("notes.txt", b"hello, not an image"), ("cut.jpg", truncated), ("bomb.png", bomb.getvalue()),
         ("big.png", big), ("good.png", good), ("empty.png", b"")],
    )
    assert response.status_code == 201
    items = {i["name"]: i for i in response.data["items"]}
    assert items["good.png"]["status"] == "created"
    assert "not an image" in items["notes.txt"]["reason"]
    assert "corrupt or truncated" in items["cut.jpg"]["reason"]
    assert "over the limit of 1,000,000 pixels" in items["bomb.png"]["reason"]
    assert "over the limit" in items["big.png"]["reason"] and "MB" in items["big.png"]["reason"]
    assert items["empty.png"]["reason"] == "file is empty"
    assert Task.objects.count() == 1 and Asset.objects.count() == 1
    # Rejected items leave nothing behind: any new file belongs to the stored image, and no temp files.
    asset = Asset.objects.get()
    assert {str(p) for p in media_files() - before} <= {asset.file.name, asset.thumbnail.name}
    assert {asset.file.name, asset.thumbnail.name} <= {str(p) for p in media_files()}
    assert not any(p.name.startswith(".tmp-") for p in media_files() - before)


def test_a_zip_is_unpacked_and_unsafe_members_are_refused(batch, alice, client_for):
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("photos/one.png", png_bytes(10))
        z.writestr("photos/two.jpg", jpeg_bytes(11))
        z.writestr("../escape.png", png_bytes(12))
        z.writestr("/abs.png", png_bytes(13))
        z.writestr("readme.txt", b"hi")
        z.writestr("__MACOSX/._one.png", b"junk")
        link = zipfile.ZipInfo("link.png")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        z.writestr(link, "/etc/passwd")
    response = upload(client_for(alice), batch, [("pile.zip", archive.getvalue())])
    assert response.status_code == 201
    items = {i["name"]: i for i in response.data["items"]}
    assert items["photos/one.png"]["status"] == "created" and items["photos/two.jpg"]["status"] == "created"
    assert "unsafe path" in items["../escape.png"]["reason"]
    assert "unsafe path" in items["/abs.png"]["reason"]
    assert "links are not accepted" in items["link.png"]["reason"]
    assert "not an image file name" in items["readme.txt"]["reason"]
    assert "__MACOSX/._one.png" not in items
    assert Task.objects.count() == 2


def test_a_zip_that_expands_too_far_is_refused_whole(batch, alice, client_for, settings):
    settings.INGEST_MAX_ZIP_BYTES = 100_000
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("ok.png", png_bytes(1))
        z.writestr("zeros.png", b"\0" * 5_000_000)  # compresses to a few kB
    response = upload(client_for(alice), batch, [("bomb.zip", archive.getvalue())])
    assert response.status_code == 400
    assert "expands to" in response.data["detail"] and response.data["code"] == "zip_too_large"
    assert Task.objects.count() == 0 and Asset.objects.count() == 0


def test_a_corrupt_zip_is_a_clear_400(batch, alice, client_for):
    response = upload(client_for(alice), batch, [("broken.zip", b"PK\x03\x04 this is not really a zip")])
    assert response.status_code == 400
    assert "not a valid zip archive" in response.data["detail"]


@pytest.mark.parametrize("who", ["bob", "carol", "mallory"])
def test_only_owners_upload(batch, client_for, who, request):
    response = upload(client_for(request.getfixturevalue(who)), batch, [("a.png", png_bytes(1))])
    assert response.status_code == REFUSED[who]
    assert Task.objects.count() == 0


def test_a_finalized_batch_takes_no_more_images(batch, alice, client_for):
    client = client_for(alice)
    upload(client, batch, [("a.png", png_bytes(1))])
    assert client.post(f"/api/v1/batches/{batch}/finalize/").status_code == 200
    response = upload(client, batch, [("b.png", png_bytes(2))])
    assert response.status_code == 409
    assert "only be added to an open batch" in response.data["detail"]
    assert Task.objects.count() == 1


def test_an_upload_without_files_says_what_to_send(batch, alice, client_for):
    response = client_for(alice).post(f"/api/v1/batches/{batch}/tasks/", {}, format="multipart")
    assert response.status_code == 400
    assert "files" in response.data["fields"]


def test_zip_helper_round_trips():
    assert zipfile.ZipFile(io.BytesIO(zip_bytes({"a.png": b"x"}))).read("a.png") == b"x"


def test_a_member_that_expands_too_many_times_is_refused_and_the_rest_stored(batch, alice, client_for, settings):
    settings.INGEST_MAX_ZIP_RATIO = 200
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("ok.png", png_bytes(1))
        z.writestr("zeros.bmp", b"BM" + b"\0" * 5_000_000)  # 5 MB that deflate to a few kB: about 1,000×
        z.writestr("small-flat.bmp", b"\0" * 500_000)  # compresses as well, but under 1 MB costs nothing to unpack
    response = upload(client_for(alice), batch, [("pile.zip", archive.getvalue())])

    assert response.status_code == 201
    items = {i["name"]: i for i in response.data["items"]}
    assert items["ok.png"]["status"] == "created"
    assert items["zeros.bmp"]["status"] == "rejected"
    assert "expands" in items["zeros.bmp"]["reason"] and "limit of 200×" in items["zeros.bmp"]["reason"]
    assert "not an image" in items["small-flat.bmp"]["reason"]  # judged as an image, not by its ratio
    assert Task.objects.count() == 1


def test_an_upload_holds_one_group_of_bytes_at_a_time(project, alice, monkeypatch, tmp_path):
    """Members are read one at a time and stored a group at a time; a group ends at INGEST_GROUP_BYTES."""
    import os
    import tracemalloc

    from labeling import ingest, projects
    from labeling.models import BatchKind

    monkeypatch.setattr(ingest, "INGEST_GROUP_BYTES", 2 * 1024 * 1024)
    path = tmp_path / "big.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as z:
        for i in range(24):  # 24 incompressible images of about 1 MB each
            out = io.BytesIO()
            Image.frombytes("RGB", (580, 580), os.urandom(580 * 580 * 3)).save(out, "PNG", compress_level=0)
            z.writestr(f"noise-{i}.png", out.getvalue())
    batch = projects.create_batch(project=project, name="big", kind=BatchKind.CALIBRATION, created_by=alice)

    tracemalloc.start()
    try:
        with path.open("rb") as upload_file:
            results = ingest.ingest_files(batch=batch, files=[("big.zip", upload_file)])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert [r["status"] for r in results] == ["created"] * 24
    assert Task.objects.filter(batch=batch).count() == 24
    assert peak < 12 * 1024 * 1024, f"held {peak / 2**20:.1f} MB at once"  # all 24 at once would be 24 MB and more
