"""Where image embeddings are stored and searched: pgvector where the server has it, `real[]` elsewhere.

Each project's images have one unit-length vector of EMBEDDING_DIM floats (labeling/features.py makes
them). On a server with the `vector` extension (the embedded PostgreSQL 18, the compose image) the
column is `vector(EMBEDDING_DIM)` with an HNSW index for cosine distance; on one without it (a plain
PostgreSQL 15) migration 0016 makes it `real[]`, and nearest neighbours are an exact scan of the
project's rows. Writes and reads are the same statements on both: a vector is sent as the array
literal PostgreSQL casts to either type, and read back as `real[]`, which pgvector casts to.

The statements are named constants, rows read by column name, as in `hotpath.py`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from django.db import connection, models, transaction
from django.db.backends.base.base import BaseDatabaseWrapper

EMBEDDING_DIM = 128
TABLE = "labeling_embedding"


def vector_installed(conn: BaseDatabaseWrapper) -> bool:
    """Whether the database has the `vector` extension installed (migration 0016 installs it when available)."""
    with conn.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_extension WHERE extname = 'vector'")
        return cursor.fetchone() is not None


def vector_available(conn: BaseDatabaseWrapper) -> bool:
    """Whether the server offers the `vector` extension (it may not be installed in this database yet)."""
    with conn.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'")
        return cursor.fetchone() is not None


_KIND = "_winnow_embedding_column"


def column_is_vector() -> bool:
    """Whether the embedding column is pgvector's type, read from the catalog once per database session."""
    database = connection
    state = database.__dict__.get(_KIND)
    if state is None or state[0] is not database.connection:
        with database.cursor() as cursor:
            cursor.execute(COLUMN_TYPE, [TABLE])
            row = cursor.fetchone()
        state = database.__dict__[_KIND] = (database.connection, bool(row) and row[0].startswith("vector"))
    return state[1]


class EmbeddingField(models.Field):
    """A unit vector of EMBEDDING_DIM float32s: `vector(EMBEDDING_DIM)` with pgvector, else `real[]`."""

    description = "an image embedding"

    def db_type(self, connection: BaseDatabaseWrapper) -> str:
        return f"vector({EMBEDDING_DIM})" if vector_installed(connection) else "real[]"

    def get_db_prep_value(self, value: Any, connection: BaseDatabaseWrapper, prepared: bool = False) -> Any:
        if value is None:
            return None
        return [float(x) for x in np.asarray(value, dtype=np.float32).ravel()]

    def from_db_value(self, value: Any, expression: Any, connection: BaseDatabaseWrapper) -> np.ndarray | None:
        return parse(value)

    def to_python(self, value: Any) -> np.ndarray | None:
        return parse(value)


def parse(value: Any) -> np.ndarray | None:
    """A stored vector as float32: pgvector's text form '[0.1,…]', or a `real[]` list."""
    if value is None:
        return None
    if isinstance(value, str):
        return np.array(value.strip("[]{}").split(","), dtype=np.float32)
    return np.asarray(value, dtype=np.float32)


def literal(vector: np.ndarray) -> str:
    """A vector as text both column types read: pgvector's '[…]' or an array's '{…}'."""
    body = ",".join(f"{x:.6g}" for x in np.asarray(vector, dtype=np.float32).ravel())
    return f"[{body}]" if column_is_vector() else f"{{{body}}}"


COLUMN_TYPE = """
SELECT format_type(a.atttypid, a.atttypmod) FROM pg_attribute a
WHERE a.attrelid = %s::regclass AND a.attname = 'vector' AND NOT a.attisdropped
"""

# One statement per chunk of rows: the vectors arrive as text, cast by the column's own input function.
UPSERT = f"""
INSERT INTO {TABLE} (project_id, asset_id, version, vector)
SELECT %s, r.asset_id, %s, r.vector::{{kind}}
FROM unnest(%s::bigint[], %s::text[]) AS r(asset_id, vector)
ON CONFLICT ON CONSTRAINT embedding_unique_asset DO UPDATE SET version = EXCLUDED.version, vector = EXCLUDED.vector
"""  # noqa: S608 (the table name is a constant)

MATRIX = f"SELECT asset_id, vector::real[] AS vector FROM {TABLE} WHERE project_id = %s ORDER BY asset_id"  # noqa: S608
MATRIX_OF = f"""
SELECT asset_id, vector::real[] AS vector FROM {TABLE}
WHERE project_id = %s AND asset_id = ANY(%s::bigint[]) ORDER BY asset_id
"""  # noqa: S608

# pgvector: the HNSW index walks the graph in distance order.
NEAREST_VECTOR = f"""
SELECT e.asset_id, e.vector <=> %s::vector AS distance FROM {TABLE} e
WHERE e.project_id = %s AND e.asset_id <> ALL(%s::bigint[])
ORDER BY e.vector <=> %s::vector LIMIT %s
"""  # noqa: S608

# real[]: the same answer by an exact scan of the project's rows (vectors are unit length: distance = 1 - dot).
NEAREST_ARRAY = f"""
SELECT e.asset_id, 1 - (SELECT sum(a * b) FROM unnest(e.vector, %s::real[]) AS u(a, b)) AS distance
FROM {TABLE} e
WHERE e.project_id = %s AND e.asset_id <> ALL(%s::bigint[])
ORDER BY distance LIMIT %s
"""  # noqa: S608

WRITE_CHUNK = 2000


def write(*, project_id: int, version: int, asset_ids: Sequence[int], matrix: np.ndarray) -> None:
    """Store (or replace) the embeddings of `asset_ids` under feature model `version`, in chunks."""
    kind = f"vector({EMBEDDING_DIM})" if column_is_vector() else "real[]"
    with connection.cursor() as cursor:
        for start in range(0, len(asset_ids), WRITE_CHUNK):
            ids = [int(a) for a in asset_ids[start : start + WRITE_CHUNK]]
            texts = [literal(row) for row in matrix[start : start + WRITE_CHUNK]]
            cursor.execute(UPSERT.format(kind=kind), [project_id, version, ids, texts])


def read(*, project_id: int, asset_ids: Sequence[int] | None = None) -> tuple[list[int], np.ndarray]:
    """(asset ids in id order, float32 matrix [n, EMBEDDING_DIM]) of a project's stored embeddings."""
    with connection.cursor() as cursor:
        if asset_ids is None:
            cursor.execute(MATRIX, [project_id])
        else:
            cursor.execute(MATRIX_OF, [project_id, [int(a) for a in asset_ids]])
        rows = cursor.fetchall()
    ids = [row[0] for row in rows]
    matrix = np.array([row[1] for row in rows], dtype=np.float32).reshape(len(rows), EMBEDDING_DIM)
    return ids, matrix


def nearest(*, project_id: int, vector: np.ndarray, k: int, exclude: Sequence[int] = ()) -> list[tuple[int, float]]:
    """The `k` images of the project nearest to `vector` by cosine distance, nearest first: (asset id, distance)."""
    text = literal(vector)
    excluded = [int(a) for a in exclude]
    with transaction.atomic(), connection.cursor() as cursor:
        if column_is_vector():
            # Settings local to this transaction: ef_search bounds the candidates the graph walk keeps (at
            # least k, with room to spare); iterative scans (pgvector 0.8; ignored before) walk on until
            # enough rows of this project pass the filter.
            cursor.execute("SELECT set_config('hnsw.ef_search', %s, true), set_config('hnsw.iterative_scan', "
                           "'relaxed_order', true)", [str(max(40, 2 * k))])
            cursor.execute(NEAREST_VECTOR, [text, project_id, excluded, text, k])
        else:
            cursor.execute(NEAREST_ARRAY, [text, project_id, excluded, k])
        rows = cursor.fetchall()
    return sorted(((asset_id, float(distance)) for asset_id, distance in rows), key=lambda pair: pair[1])
