"""Embeddings in pgvector (the embedded PostgreSQL 18): the column is `vector(128)` with an HNSW index,
and nearest neighbours through it agree with an exact search of the same vectors."""

from __future__ import annotations

import numpy as np
import pytest
from django.db import connection

from labeling import assist, vectors
from labeling.models import Embedding

from .conftest import assist_now

pytestmark = [pytest.mark.django_db, pytest.mark.vector]


def test_the_column_is_pgvector_with_an_hnsw_index():
    assert vectors.column_is_vector()
    with connection.cursor() as cursor:
        cursor.execute(vectors.COLUMN_TYPE, [vectors.TABLE])
        assert cursor.fetchone()[0] == f"vector({vectors.EMBEDDING_DIM})"
        cursor.execute("SELECT indexdef FROM pg_indexes WHERE indexname = 'embedding_hnsw_idx'")
        definition = cursor.fetchone()[0]
    assert "USING hnsw" in definition and "vector_cosine_ops" in definition


def test_nearest_neighbours_through_the_index_agree_with_an_exact_search(project, make_batch):
    batch = make_batch(project, 40)
    ids = list(batch.tasks.order_by("id").values_list("asset_id", flat=True))
    rng = np.random.default_rng(0)
    matrix = rng.normal(size=(40, vectors.EMBEDDING_DIM)).astype(np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    vectors.write(project_id=project.pk, version=1, asset_ids=ids, matrix=matrix)
    got_ids, got = vectors.read(project_id=project.pk)
    assert got_ids == sorted(ids)
    by_id = dict(zip(got_ids, got, strict=True))
    assert all(np.allclose(by_id[a], matrix[i], atol=1e-5) for i, a in enumerate(ids))
    query = matrix[7]
    exact = np.argsort(1 - matrix @ query)[1:6]
    found = vectors.nearest(project_id=project.pk, vector=query, k=5, exclude=[ids[7]])
    assert [a for a, _ in found] == [ids[i] for i in exact]
    assert np.allclose([d for _, d in found], (1 - matrix @ query)[exact], atol=1e-4)


def test_the_whole_loop_runs_on_pgvector(planted):
    pile = planted(gold=9, production=9)
    job, fit = assist_now(pile["project"])
    assert job.assets_done == 18 and Embedding.objects.filter(project=pile["project"]).count() == 18
    task = pile["batch"].tasks.first()
    rows = assist.similar_tasks(task=task, k=4)
    assert len(rows) == 4 and [r["distance"] for r in rows] == sorted(r["distance"] for r in rows)
