"""Exports loaded by the other tools' own code: Label Studio's image links fetched without a session,
the ImageFolder zip through torchvision and Hugging Face `datasets`, the split zip through the
reference CycleGAN's UnalignedDataset (when WINNOW_REFERENCE_DIR names a copy of it)."""

from __future__ import annotations

import io
import json
import os
import sys
import time
import zipfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from django.core import signing
from django.core.files.storage import default_storage
from django.test import Client

from labeling.models import Project, Task, TaskStatus
from tests.labeling.test_export_formats import approved_split, body_of, export, labeled  # noqa: F401
from winnow import media

pytestmark = pytest.mark.django_db


def test_label_studio_image_links_serve_the_image_without_a_session(labeled: Project, alice: Any,  # noqa: F811
                                                                     client_for: Any) -> None:
    tasks = json.loads(body_of(export(client_for(alice), labeled, "labelstudio")))
    url = tasks[0]["data"]["image"].removeprefix("http://testserver")
    response = Client().get(url)  # no session, no token: what Label Studio's browser sends
    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    with default_storage.open(Task.objects.order_by("id").first().asset.file.name, "rb") as stored:
        assert b"".join(response.streaming_content) == stored.read()
    token, name = url.split("/")[2:4]
    assert Client().get(f"/signed-media/{token[:-2]}xx/{name}").status_code == 403  # signature changed
    assert Client().get(f"/signed-media/{token}/other.png").status_code == 403  # another file's name


def test_an_expired_link_is_gone(labeled: Project, settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    name = Task.objects.order_by("id").first().asset.file.name
    settings.SIGNED_MEDIA_URL_SECONDS = 3600
    now = time.time()
    monkeypatch.setattr(signing.time, "time", lambda: now - 7200)
    url = media.signed_url("http://testserver", name).removeprefix("http://testserver")
    monkeypatch.setattr(signing.time, "time", lambda: now)
    assert Client().get(url).status_code == 410
    forged = signing.dumps("../../etc/passwd", salt="another salt")
    assert Client().get(f"/signed-media/{forged}/passwd").status_code == 403


def extract(body: bytes, into: Path) -> Path:
    zipfile.ZipFile(io.BytesIO(body)).extractall(into)
    return into


def test_the_imagefolder_zip_loads_with_torchvision(labeled: Project, alice: Any, client_for: Any,  # noqa: F811
                                                    tmp_path: Path) -> None:
    from torchvision.datasets import ImageFolder

    root = extract(body_of(export(client_for(alice), labeled, "imagefolder")), tmp_path)
    dataset = ImageFolder(str(root))
    assert dataset.classes == ["Anime"]
    assert len(dataset) == Task.objects.filter(status=TaskStatus.COMPLETED).count() == 2
    image, label = dataset[0]
    assert image.size == (48, 48) and dataset.classes[label] == "Anime"


def test_the_imagefolder_zip_loads_with_hugging_face_datasets_and_its_labels(
        labeled: Project, alice: Any, client_for: Any, tmp_path: Path) -> None:  # noqa: F811
    datasets = pytest.importorskip("datasets")
    root = extract(body_of(export(client_for(alice), labeled, "imagefolder")), tmp_path / "data")
    loaded = datasets.load_dataset("imagefolder", data_dir=str(root), split="train",
                                   cache_dir=str(tmp_path / "cache"))
    assert len(loaded) == 2
    assert sorted(loaded["label"]) == ["Anime", "Anime"]
    tasks = {str(t.pk) for t in Task.objects.filter(status=TaskStatus.COMPLETED)}
    assert {str(t) for t in loaded["task_id"]} == tasks
    assert loaded[0]["image"].size == (48, 48)


def test_the_split_zip_is_the_reference_cyclegan_dataroot(project: Project, alice: Any, client_for: Any,
                                                          tmp_path: Path) -> None:
    split = approved_split(project, alice)
    root = extract(body_of(client_for(alice).get(f"/api/v1/splits/{split.pk}/export-cyclegan/")), tmp_path)
    for phase in ("train", "test"):
        for domain in "AB":
            assert len(list((root / f"{phase}{domain}").iterdir())) == split.counts[domain][phase]
    reference = os.environ.get("WINNOW_REFERENCE_DIR")
    if not reference:
        pytest.skip("the layout is checked; set WINNOW_REFERENCE_DIR to a copy of the reference CycleGAN to load it")
    sys.path.insert(0, reference)
    try:
        from data.unaligned_dataset import UnalignedDataset
    finally:
        sys.path.remove(reference)
    for phase in ("train", "test"):
        opt = SimpleNamespace(dataroot=str(root), phase=phase, max_dataset_size=float("inf"), direction="AtoB",
                              input_nc=3, output_nc=3, preprocess="resize_and_crop", load_size=32, crop_size=32,
                              no_flip=True, serial_batches=True, isTrain=phase == "train")
        dataset = UnalignedDataset(opt)
        assert (dataset.A_size, dataset.B_size) == (split.counts["A"][phase], split.counts["B"][phase])
        item = dataset[0]
        assert tuple(item["A"].shape) == (3, 32, 32) and tuple(item["B"].shape) == (3, 32, 32)
