"""manage.py make_benchmark_dataset and manage.py evaluate."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from PIL import Image

from training.models import Evaluation, EvaluationStatus, Run

from .test_evaluation_runs import run_to_evaluate, test_split, tiny_checkpoint  # noqa: F401  (fixtures)


def make_set(out: Path, *extra: str) -> str:
    stdout = io.StringIO()
    call_command("make_benchmark_dataset", str(out), "--size", "32", "--n-a", "5", "--n-b", "4", "--n-test", "3",
                 *extra, stdout=stdout)
    return stdout.getvalue()


def test_make_benchmark_dataset_writes_the_folders_and_manifest(tmp_path: Path) -> None:
    printed = make_set(tmp_path / "set")
    assert "wrote 5 A, 4 B and 3 test pairs of 32x32" in printed
    out = tmp_path / "set"
    assert [len(list((out / d).glob("*.png"))) for d in ("A", "B", "test/A", "test/B")] == [5, 4, 3, 3]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["params"] == {"size": 32, "n_a": 5, "n_b": 4, "n_test": 3, "seed": 0, "filter": "cartoon",
                                  "max_scale": 2.0}
    with Image.open(out / "A" / "a-00001.png") as image:
        assert image.size == (32, 32)


def test_make_benchmark_dataset_takes_any_importable_filter(tmp_path: Path) -> None:
    make_set(tmp_path / "set", "--filter", "PIL.ImageOps:invert")
    manifest = json.loads((tmp_path / "set" / "manifest.json").read_text())
    assert manifest["filter"] == "invert"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--filter", "sketch"], "unknown filter"),
        (["--filter", "no_such_module:f"], "cannot import the filter"),
        (["--size", "4096"], "cells"),
    ],
)
def test_make_benchmark_dataset_refuses_bad_arguments(tmp_path: Path, args: list[str], message: str) -> None:
    with pytest.raises(CommandError, match=message):
        make_set(tmp_path / "set", *args)


def test_make_benchmark_dataset_never_writes_into_a_folder_with_files(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(CommandError, match="not empty"):
        make_set(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def test_evaluate_prints_the_numbers_and_stores_the_evaluation(run_to_evaluate: Run, tmp_path: Path,  # noqa: F811
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    make_set(tmp_path / "set")
    stdout = io.StringIO()
    call_command("evaluate", str(run_to_evaluate.pk), "--metrics", "known_mapping,classifier", "--known-mapping",
                 str(tmp_path / "set" / "manifest.json"), "--seeds", "0", "--epochs", "1", stdout=stdout)
    printed = stdout.getvalue()
    assert "PSNR AB" in printed and "colour transfer" in printed and "identity" in printed
    assert "classifier minority_recall" in printed
    assert "evaluating" in capsys.readouterr().err  # the progress bar
    evaluation = Evaluation.objects.get(run=run_to_evaluate)
    assert evaluation.status == EvaluationStatus.SUCCEEDED
    assert evaluation.results["known_mapping"]["AB"]["n"] == 3


def test_evaluate_refuses_unknown_runs_and_bad_options(run_to_evaluate: Run, settings: Any) -> None:  # noqa: F811
    settings.WINNOW_INCEPTION_WEIGHTS = ""
    with pytest.raises(CommandError, match="run 999999 does not exist"):
        call_command("evaluate", "999999")
    with pytest.raises(CommandError, match="WINNOW_INCEPTION_WEIGHTS"):
        call_command("evaluate", str(run_to_evaluate.pk), "--metrics", "fid_kid")
    with pytest.raises(CommandError, match="--seeds"):
        call_command("evaluate", str(run_to_evaluate.pk), "--seeds", "a,b")
    with pytest.raises(CommandError, match="--known-mapping"):
        call_command("evaluate", str(run_to_evaluate.pk), "--known-mapping", "{not json")
    assert not Evaluation.objects.exists()
