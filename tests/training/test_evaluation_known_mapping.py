"""The known-mapping benchmark: filters, the crop plan's disjointness, PSNR/SSIM and the baselines."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps
from skimage.metrics import peak_signal_noise_ratio

from training.evaluation import known_mapping as km


@pytest.fixture(scope="module")
def dataset() -> km.KnownMappingSet:
    return km.make_known_mapping(size=32, n_a=12, n_b=12, n_test=6, seed=7)


def boxes_overlap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def test_only_photographs_shipped_on_disk_are_used() -> None:
    photos = km.sample_photographs()
    assert {p.name for p in photos} <= {f"{package}/{name}" for package, name in km.SAMPLE_PHOTOS}
    assert len(photos) >= 5 and all(p.image.mode == "RGB" and len(p.sha256) == 64 for p in photos)


def test_the_cartoon_filter_is_deterministic_and_keeps_the_size(dataset: km.KnownMappingSet) -> None:
    image = dataset.a[0]
    first, second = km.cartoon(image), km.cartoon(image.copy())
    assert first.size == image.size and first.mode == "RGB"
    assert first.tobytes() == second.tobytes()
    assert first.tobytes() != image.tobytes()
    # Away from the dark edges, every channel takes one of the quantised levels.
    levels = {round(i * 255 / 7) for i in range(8)}
    values = set(np.unique(np.asarray(km.cartoon(image, edge_threshold=10.0))).tolist())
    assert values <= levels


def test_the_colour_grade_is_one_function_of_each_pixels_colour(dataset: km.KnownMappingSet) -> None:
    image = dataset.a[0]
    graded = km.colour_grade(image)
    assert graded.size == image.size and graded.mode == "RGB" and graded.tobytes() != image.tobytes()
    # Global and pointwise: the same colour maps to the same colour wherever it is.
    pixels, out = np.asarray(image).reshape(-1, 3), np.asarray(graded).reshape(-1, 3)
    mapping: dict[tuple[int, ...], tuple[int, ...]] = {}
    for colour, result in zip(map(tuple, pixels), map(tuple, out), strict=True):
        assert mapping.setdefault(colour, result) == result
    flat = Image.new("RGB", (4, 4), tuple(int(v) for v in pixels[0]))
    assert np.asarray(km.colour_grade(flat))[0, 0].tolist() == list(out[0])
    assert km.resolve_filter("colour_grade")[1] is km.colour_grade


def test_the_same_arguments_give_the_same_data_set_and_another_seed_another(dataset: km.KnownMappingSet) -> None:
    again = km.make_known_mapping(size=32, n_a=12, n_b=12, n_test=6, seed=7)
    assert [i.tobytes() for i in again.a + again.b + again.test_b] == [i.tobytes() for i in dataset.a + dataset.b + dataset.test_b]
    other = km.make_known_mapping(size=32, n_a=12, n_b=12, n_test=6, seed=8)
    assert [i.tobytes() for i in other.a] != [i.tobytes() for i in dataset.a]


def test_a_b_and_test_crops_come_from_disjoint_cells_of_the_photographs(dataset: km.KnownMappingSet) -> None:
    by_pool = {pool: [c for c in dataset.crops if c.pool == pool] for pool in km.POOLS}
    assert [len(by_pool[p]) for p in km.POOLS] == [12, 12, 6]
    for first, second in (("A", "B"), ("A", "test"), ("B", "test")):
        for x in by_pool[first]:
            for y in by_pool[second]:
                assert not (x.photo == y.photo and boxes_overlap(x.box, y.box)), (x, y)
                assert not (x.photo == y.photo and x.cell == y.cell)
    sizes = {(i.size, i.mode) for i in dataset.a + dataset.b + dataset.test_a + dataset.test_b}
    assert sizes == {((32, 32), "RGB")}


def test_test_pairs_are_the_filter_of_their_photographs(dataset: km.KnownMappingSet) -> None:
    for a, b in zip(dataset.test_a, dataset.test_b, strict=True):
        assert km.cartoon(a).tobytes() == b.tobytes()


def test_any_callable_filter_works_the_same_way() -> None:
    data = km.make_known_mapping(size=32, n_a=4, n_b=4, n_test=3, image_filter=ImageOps.invert)
    assert data.filter_name == "invert"
    for a, b in zip(data.test_a, data.test_b, strict=True):
        assert ImageOps.invert(a).tobytes() == b.tobytes()
    assert km.fidelity(ImageOps.invert, data.test_a, data.test_b)["psnr"] == float("inf")


def test_bad_filters_and_sizes_are_refused_clearly() -> None:
    with pytest.raises(ValueError, match="unknown filter 'sketch'"):
        km.make_known_mapping(size=32, n_a=2, n_b=2, n_test=1, image_filter="sketch")
    with pytest.raises(ValueError, match="of its input's size"):
        km.make_known_mapping(size=32, n_a=2, n_b=2, n_test=1, image_filter=lambda image: image.resize((8, 8)))
    with pytest.raises(ValueError, match="cells"):
        km.make_known_mapping(size=1024, n_a=2, n_b=2, n_test=1)
    with pytest.raises(ValueError, match="at least one crop"):
        km.make_known_mapping(size=32, n_a=2, n_b=0, n_test=1)


def test_psnr_and_ssim_are_infinite_and_one_for_identical_images(dataset: km.KnownMappingSet) -> None:
    image = dataset.a[0]
    assert km.psnr(image, image) == float("inf")
    assert km.ssim(image, image) == pytest.approx(1.0)
    result = km.fidelity(km.identity, dataset.test_a, dataset.test_a)
    assert result["psnr"] == float("inf") and result["ssim"] == pytest.approx(1.0) and result["n"] == 6


def test_psnr_has_its_textbook_value_and_agrees_with_scikit_image(dataset: km.KnownMappingSet) -> None:
    flat = np.full((8, 8, 3), 100, np.uint8)
    assert km.psnr(flat, flat + 1) == pytest.approx(10 * np.log10(255**2))  # MSE 1
    a, b = np.asarray(dataset.test_a[0]), np.asarray(dataset.test_b[0])
    assert km.psnr(a, b) == pytest.approx(peak_signal_noise_ratio(a, b, data_range=255))
    assert 0 < km.ssim(a, b) < 1
    with pytest.raises(ValueError, match="differ in shape"):
        km.psnr(a, a[:4])


def test_baselines_score_both_directions_and_colour_transfer_moves_colour_statistics(dataset: km.KnownMappingSet) -> None:
    result = km.baselines(dataset)
    for name in ("identity", "colour_transfer"):
        for direction in ("AB", "BA"):
            scores = result[name][direction]
            assert np.isfinite(scores["psnr"]) and 0 < scores["ssim"] < 1 and scores["n"] == 6
    transfer = km.ColourTransfer(dataset.a, dataset.b)
    moved_mean, _ = km._lab_stats([transfer(a) for a in dataset.a])
    target_mean, _ = km._lab_stats(dataset.b)
    source_mean, _ = km._lab_stats(dataset.a)
    assert np.abs(moved_mean - target_mean).sum() < np.abs(source_mean - target_mean).sum()


def test_the_data_set_writes_folders_and_a_manifest(dataset: km.KnownMappingSet, tmp_path: Path) -> None:
    out = dataset.write(tmp_path / "set")
    assert len(list((out / "A").glob("*.png"))) == 12 and len(list((out / "B").glob("*.png"))) == 12
    assert sorted(p.name for p in (out / "test" / "A").iterdir()) == sorted(p.name for p in (out / "test" / "B").iterdir())
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"] == {"A": 12, "B": 12, "test": 6} and manifest["filter"] == "cartoon"
    assert len(manifest["crops"]) == 30
    with Image.open(out / "test" / "B" / "t-00001.png") as written:
        assert written.tobytes() == dataset.test_b[0].tobytes()
