"""Ingest benchmark: 10,000 distinct 256×256 JPEGs as one zip and as multipart chunks.

Starts gunicorn (2 workers) on a throwaway PostgreSQL database, uploads, and prints images/s and the
peak resident memory of the gunicorn worker that served the upload. Target on a 2-core machine: the
zip stored, hashed, measured and thumbnailed in under 60 s, with server memory under 500 MB.

    .venv/bin/python benchmarks/ingest.py [--count 10000] [--chunk 200]
"""

from __future__ import annotations

import argparse
import io
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import requests
from PIL import Image
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks._server import BenchServer  # noqa: E402


def make_jpegs(count: int, seed: int) -> list[bytes]:
    """Distinct images: a smooth random field per image, so sizes look like photos (~10-20 kB)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in tqdm(range(count), desc="generating JPEGs", leave=False):
        small = rng.integers(0, 256, size=(16, 16, 3), dtype=np.uint8)
        image = Image.fromarray(small).resize((256, 256), Image.Resampling.BICUBIC)
        buf = io.BytesIO()
        image.save(buf, "JPEG", quality=88)
        out.append(buf.getvalue())
    return out


def project_and_batch(server: BenchServer, headers: dict[str, str], name: str) -> int:
    choices = [{"label": "A", "hotkey": "1", "domain": "A"}, {"label": "B", "hotkey": "2", "domain": "B"}]
    project = requests.post(f"{server.url}/api/v1/projects/", json={"name": name, "choices": choices}, headers=headers, timeout=60).json()
    batch = requests.post(f"{server.url}/api/v1/projects/{project['id']}/batches/", json={"name": "b", "kind": "calibration"}, headers=headers, timeout=60).json()
    return batch["id"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--chunk", type=int, default=200, help="files per multipart request")
    args = parser.parse_args()

    zipped_images = make_jpegs(args.count, seed=1)
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_STORED) as z:
        for i, data in enumerate(zipped_images):
            z.writestr(f"pile/{i:05d}.jpg", data)
    payload = archive.getvalue()
    chunk_images = make_jpegs(args.count, seed=2)
    print(f"{args.count:,} JPEGs, zip {len(payload) / 2**20:.0f} MB")

    with BenchServer(db="winnow_bench_ingest") as server:
        headers = {"Authorization": f"Token {server.create_user('alice')}"}

        batch = project_and_batch(server, headers, "zip")
        server.reset_peak()
        start = time.perf_counter()
        response = requests.post(f"{server.url}/api/v1/batches/{batch}/tasks/", headers=headers,
                                 files={"files": ("pile.zip", payload, "application/zip")}, timeout=600)
        elapsed = time.perf_counter() - start
        response.raise_for_status()
        summary = response.json()["summary"]
        print(f"zip:       {summary} in {elapsed:.1f} s = {args.count / elapsed:,.0f} images/s, "
              f"peak worker RSS {server.peak_rss_mb():.0f} MB")

        batch = project_and_batch(server, headers, "multipart")
        server.reset_peak()
        created = 0
        start = time.perf_counter()
        for i in tqdm(range(0, args.count, args.chunk), desc="multipart", leave=False):
            files = [("files", (f"{j:05d}.jpg", chunk_images[j], "image/jpeg")) for j in range(i, min(i + args.chunk, args.count))]
            response = requests.post(f"{server.url}/api/v1/batches/{batch}/tasks/", headers=headers, files=files, timeout=600)
            response.raise_for_status()
            created += response.json()["summary"]["created"]
        elapsed = time.perf_counter() - start
        print(f"multipart: {created:,} created in {elapsed:.1f} s = {args.count / elapsed:,.0f} images/s "
              f"({args.chunk} per request), peak worker RSS {server.peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
