"""Near-duplicates: images that are the same picture resized, re-encoded or lightly edited.

Exact copies are one Asset already (content hash). Near ones are found two ways:

* at ingest, by a perceptual hash: the 64-bit DCT hash of the thumbnail (the sign of each of the 8×8
  lowest frequencies against their median, after a 32×32 grey resize); two images whose hashes differ
  in at most PHASH_BITS bits are near-duplicates. The upload reply names, per new image, the task it
  nearly duplicates.
* after the embedding job, by embedding distance: a pair closer than EMBEDDING_DISTANCE whose hashes
  still share their coarse structure (within PHASH_LOOSE_BITS) — look-alikes of one kind (two noise
  images) are near in embedding space without being copies, so distance alone is not enough.

Pairs are stored per project (`NearDuplicate`), shown in the data manager, and splits keep every group
of near-duplicates on one side of train/val/test (labeling/splits.py), so no test image leaks into
training through a resized copy.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
from django.db import transaction
from django.db.models import Exists, OuterRef, Q
from PIL import Image
from scipy.fft import dctn

from .models import Asset, NearDuplicate, Task

PHASH_BITS = 6
PHASH_LOOSE_BITS = 20
EMBEDDING_DISTANCE = 0.01


def phash(image: Image.Image) -> int:
    """The 64-bit DCT perceptual hash of an image, as a signed 64-bit integer (a bigint column)."""
    grey = np.asarray(image.convert("L").resize((32, 32), Image.Resampling.LANCZOS), dtype=np.float64)
    low = dctn(grey, norm="ortho")[:8, :8].ravel()
    bits = low > np.median(low[1:])  # the DC term is left out of the median: it is the brightness
    value = int("".join("1" if b else "0" for b in bits), 2)
    return value - (1 << 64) if value >= 1 << 63 else value


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Bits differing between int64 hashes, broadcast (a[:, None] vs b[None, :] gives a matrix)."""
    return np.bitwise_count(np.bitwise_xor(a.astype(np.int64), b.astype(np.int64)).view(np.uint64))


def project_hashes(project_id: int, exclude: Iterable[int] = ()) -> tuple[np.ndarray, np.ndarray]:
    """(asset ids, hashes) of the project's live tasks' images that have a hash."""
    rows = (Task.objects.alive().filter(project_id=project_id, asset__phash__isnull=False)
            .exclude(asset_id__in=list(exclude)).values_list("asset_id", "asset__phash").distinct())
    pairs = list(rows)
    return np.array([p[0] for p in pairs], dtype=np.int64), np.array([p[1] for p in pairs], dtype=np.int64)


def find_by_hash(*, project_id: int, assets: Sequence[Asset]) -> dict[int, tuple[int, int]]:
    """For each of `assets` (new to the project) the nearest other image of the project within PHASH_BITS:
    {asset id: (its near-duplicate's asset id, bits apart)}; the pairs are recorded."""
    fresh = [a for a in assets if a.phash is not None]
    if not fresh:
        return {}
    fresh_ids = np.array([a.pk for a in fresh], dtype=np.int64)
    fresh_hashes = np.array([a.phash for a in fresh], dtype=np.int64)
    ids, hashes = project_hashes(project_id, exclude=fresh_ids.tolist())
    # The new images against the project's and against each other (an upload may hold both copies).
    ids = np.concatenate([ids, fresh_ids])
    hashes = np.concatenate([hashes, fresh_hashes])
    distance = hamming(fresh_hashes[:, None], hashes[None, :])
    distance[np.arange(len(fresh)), len(ids) - len(fresh) + np.arange(len(fresh))] = 99  # itself
    found: dict[int, tuple[int, int]] = {}
    for row, asset_id in enumerate(fresh_ids.tolist()):
        best = int(np.argmin(distance[row])) if distance.shape[1] else -1
        if best >= 0 and distance[row, best] <= PHASH_BITS:
            found[asset_id] = (int(ids[best]), int(distance[row, best]))
    record(project_id=project_id, pairs=[(a, b, NearDuplicate.Kind.HASH, float(d)) for a, (b, d) in found.items()])
    return found


def find_by_embedding(*, project_id: int, asset_ids: Sequence[int], matrix: np.ndarray,
                      new: Sequence[int] | None = None) -> int:
    """Record pairs of the project's images closer than EMBEDDING_DISTANCE (cosine) whose hashes stay within
    PHASH_LOOSE_BITS; only pairs involving `new` (all, when None). Exact: one matrix product per chunk."""
    if len(asset_ids) < 2:
        return 0
    index = {a: i for i, a in enumerate(asset_ids)}
    rows = [index[a] for a in (new if new is not None else asset_ids) if a in index]
    hashes = dict(Asset.objects.filter(pk__in=list(asset_ids)).values_list("id", "phash"))
    pairs = []
    ids = np.asarray(asset_ids)
    for start in range(0, len(rows), 1024):
        chunk = rows[start : start + 1024]
        distance = 1.0 - matrix[chunk] @ matrix.T
        for r, i in enumerate(chunk):
            distance[r, i] = 2.0
            for j in np.flatnonzero(distance[r] < EMBEDDING_DISTANCE):
                a, b = int(ids[i]), int(ids[j])
                ha, hb = hashes.get(a), hashes.get(b)
                if ha is None or hb is None or bin((ha ^ hb) & (2**64 - 1)).count("1") > PHASH_LOOSE_BITS:
                    continue
                pairs.append((a, b, NearDuplicate.Kind.EMBEDDING, float(distance[r, j])))
    return record(project_id=project_id, pairs=pairs)


def record(*, project_id: int, pairs: Iterable[tuple[int, int, str, float]]) -> int:
    """Store near-duplicate pairs (each once, the smaller asset id first); returns how many were new."""
    rows = {}
    for a, b, kind, distance in pairs:
        if a == b:
            continue
        low, high = min(a, b), max(a, b)
        rows.setdefault((low, high), NearDuplicate(project_id=project_id, asset_low_id=low, asset_high_id=high,
                                                   kind=kind, distance=distance))
    if not rows:
        return 0
    with transaction.atomic():
        before = NearDuplicate.objects.filter(project_id=project_id).count()
        NearDuplicate.objects.bulk_create(rows.values(), ignore_conflicts=True)
        return NearDuplicate.objects.filter(project_id=project_id).count() - before


def groups(project_id: int) -> dict[int, int]:
    """{asset id: its group's representative asset id} for every image with a near-duplicate in the project
    (union-find over the pairs; the representative is the group's smallest asset id)."""
    parent: dict[int, int] = {}

    def root(x: int) -> int:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for low, high in NearDuplicate.objects.filter(project_id=project_id).values_list("asset_low_id", "asset_high_id"):
        a, b = root(low), root(high)
        if a != b:
            parent[max(a, b)] = min(a, b)
    return {x: root(x) for x in list(parent)}


def neighbours_of(project_id: int, asset_id: int) -> list[tuple[int, str, float]]:
    """The near-duplicates of one image: (asset id, kind, distance)."""
    rows = NearDuplicate.objects.filter(project_id=project_id).filter(asset_low_id=asset_id).values_list(
        "asset_high_id", "kind", "distance").union(
        NearDuplicate.objects.filter(project_id=project_id, asset_high_id=asset_id).values_list(
            "asset_low_id", "kind", "distance"))
    return sorted(rows, key=lambda r: r[2])


def has_near_duplicate() -> Q:
    """A filter on tasks: the task's image has a near-duplicate in its project (an index lookup per row)."""
    pairs = NearDuplicate.objects.filter(project_id=OuterRef("project_id"))
    return Q(Exists(pairs.filter(asset_low_id=OuterRef("asset_id")))) | Q(Exists(pairs.filter(asset_high_id=OuterRef("asset_id"))))


def near_tasks(task: Task) -> list[dict[str, object]]:
    """The data manager's list of a task's near-duplicates: the first live task of each near image."""
    if task.asset_id is None:
        return []
    near = neighbours_of(task.project_id, task.asset_id)
    first: dict[int, int] = {}
    for asset_id, task_id in (Task.objects.alive().filter(project_id=task.project_id, asset_id__in=[n[0] for n in near])
                              .order_by("id").values_list("asset_id", "id")):
        first.setdefault(asset_id, task_id)
    return [{"task": first[a], "kind": kind, "distance": round(d, 5)} for a, kind, d in near if a in first]
