"""Nearest-neighbour queries on memory's one vector column, which holds vectors of any
dimension. Each dimension has its own partial HNSW index on `embedding::vector(<dim>)`
`WHERE embedding_dim = <dim>`; queries repeat that expression and condition, so the
planner can use the index and never casts a vector of another dimension."""

from __future__ import annotations

import functools
import logging

from django.db import connection, transaction
from django.db.models import QuerySet
from django.db.models.functions import Cast
from pgvector.django import CosineDistance, VectorField

from memory.models import HNSW_INDEX, Memory

logger = logging.getLogger(__name__)

# pgvector's HNSW indexes take vectors of at most this many dimensions.
HNSW_MAX_DIM = 2000
# An HNSW scan returns at most hnsw.ef_search rows (40 by default), before other
# conditions filter them; its upper limit is 1000.
EF_SEARCH_MIN, EF_SEARCH_MAX = 40, 1000
# Any fixed number: the advisory lock taken to create an index (two processes storing the
# first vector of a new dimension would otherwise race on the index's name).
INDEX_LOCK = 4_711_228


def ensure_index(dim: int) -> None:
    """Create the HNSW index for vectors of `dim` dimensions, unless it exists."""
    dim = int(dim)
    if dim > HNSW_MAX_DIM:
        _unindexed(dim)
        return
    name = HNSW_INDEX.format(dim=dim)
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s)", [name])
        if cursor.fetchone()[0] is not None:
            return
        with transaction.atomic():
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [INDEX_LOCK])
            # PostgreSQL refuses CREATE INDEX while the transaction has deferred foreign
            # key checks pending (the caller may have inserted rows): run them now.
            connection.check_constraints()
            cursor.execute(
                f"CREATE INDEX IF NOT EXISTS {name} ON {Memory._meta.db_table} "
                f"USING hnsw ((embedding::vector({dim})) vector_cosine_ops) "
                f"WHERE embedding_dim = {dim}"
            )


@functools.cache
def _unindexed(dim: int) -> None:
    logger.warning(
        "memory vectors of %d dimensions cannot have an HNSW index (pgvector indexes at most "
        "%d); searches over them scan every entry",
        dim,
        HNSW_MAX_DIM,
    )


def by_distance(entries: QuerySet[Memory], model: str, vector: list[float]) -> QuerySet[Memory]:
    """`entries` whose vectors `model` made (with the query's dimension), nearest to `vector`
    first, each with its cosine `distance`."""
    dim = len(vector)
    return (
        entries.filter(embedding_model=model, embedding_dim=dim)
        .annotate(distance=CosineDistance(Cast("embedding", VectorField(dimensions=dim)), vector))
        .order_by("distance")
    )


def nearest(
    entries: QuerySet[Memory], model: str, vector: list[float], fields: tuple[str, ...], limit: int
) -> list[tuple]:
    """`fields` and the distance of the `limit` entries nearest to `vector` (by_distance)."""
    with transaction.atomic(), connection.cursor() as cursor:
        ef_search = min(EF_SEARCH_MAX, max(EF_SEARCH_MIN, limit))
        cursor.execute("SELECT set_config('hnsw.ef_search', %s, true)", [str(ef_search)])
        ranked = by_distance(entries, model, vector)
        return list(ranked.values_list(*fields, "distance")[:limit])
