"""What runs remember and recall: entries embedded with the configured model and indexed
for full text, searched by both and fused by reciprocal rank. A project sees its own
memory, and that of other projects only when both share theirs."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.postgres.search import SearchQuery, SearchRank
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from memory.embeddings import embedder
from memory.models import Memory, content_hash
from memory.vectors import ensure_index, nearest
from runs.models import Project, Run

RRF_K = 60  # reciprocal rank fusion: score = sum of 1 / (RRF_K + rank) over the legs
EMBED_BATCH = 256
MAX_QUERY_WORDS = 64
TITLE_LENGTH = Memory._meta.get_field("title").max_length


@dataclass(frozen=True)
class Hit:
    memory: Memory
    score: float
    vector_rank: int | None  # 1-based rank by cosine distance; None: not among the candidates
    text_rank: int | None  # 1-based rank by full-text relevance; None: no match or not close


@dataclass(frozen=True)
class Chunk:
    """A piece of a source file, usually one definition."""

    path: str
    symbol: str
    line: int | None
    text: str


def visible_projects(project: Project) -> list[int]:
    if not project.share_memory:
        return [project.id]
    others = Project.objects.filter(share_memory=True).exclude(pk=project.pk)
    return [project.id, *others.values_list("id", flat=True)]


def _document(title: str, text: str) -> str:
    return f"{title}\n{text}"


def _embed(texts: list[str]) -> tuple[str, list[list[float]]]:
    """The current model's name and the texts' vectors, asked for in batches."""
    current = embedder()
    vectors = []
    for start in range(0, len(texts), EMBED_BATCH):
        vectors += current.embed(texts[start : start + EMBED_BATCH])
    for dim in {len(vector) for vector in vectors}:
        ensure_index(dim)
    return current.name, vectors


def remember(
    project: Project,
    kind: str,
    title: str,
    text: str,
    *,
    run: Run | None = None,
    phase_id: str = "",
    path: str = "",
    symbol: str = "",
    line: int | None = None,
    meta: dict | None = None,
) -> Memory:
    """Store an entry; the same content again only marks it as fresh (and takes the new
    run and meta), without embedding it again."""
    if kind not in Memory.Kind.values:
        raise ValueError(f"unknown memory kind {kind!r}; one of {', '.join(Memory.Kind.values)}")
    title = title.strip()[:TITLE_LENGTH]  # a label: a long one is cut, not refused
    key = {
        "project": project,
        "kind": kind,
        "path": path,
        "symbol": symbol,
        "content_hash": content_hash(kind, path, symbol, title, text),
    }
    touch: dict = {"updated_at": timezone.now()}
    if run is not None:
        touch["run"] = run
    if meta is not None:
        touch["meta"] = meta
    if Memory.objects.filter(**key).update(**touch):
        return Memory.objects.get(**key)
    model, (vector,) = _embed([_document(title, text)])
    try:
        with transaction.atomic():
            return Memory.objects.create(
                **key,
                run=run,
                phase_id=phase_id,
                line=line,
                title=title,
                text=text,
                embedding=vector,
                embedding_model=model,
                embedding_dim=len(vector),
                meta=meta or {},
            )
    except IntegrityError:  # stored by another process meanwhile
        Memory.objects.filter(**key).update(**touch)
        return Memory.objects.get(**key)


def _code_entry(project: Project, chunk: Chunk) -> Memory:
    title = (f"{chunk.symbol} in {chunk.path}" if chunk.symbol else chunk.path)[:TITLE_LENGTH]
    return Memory(
        project=project,
        kind=Memory.Kind.CODE,
        path=chunk.path,
        symbol=chunk.symbol,
        line=chunk.line,
        title=title,
        text=chunk.text,
        content_hash=content_hash(Memory.Kind.CODE, chunk.path, chunk.symbol, title, chunk.text),
        meta={},
    )


def index_code(
    project: Project, chunks: Iterable[Chunk], *, paths: Iterable[str] | None = None
) -> int:
    """Bring the project's code entries for these files up to date: embed chunks that are
    new or were embedded by another model, delete those no longer among `chunks`. `paths`
    names the files covered (default: the chunks' own), so a file without chunks any
    more loses its entries. Returns the number of chunks embedded."""
    wanted = {}
    for chunk in chunks:
        entry = _code_entry(project, chunk)
        wanted[(entry.path, entry.symbol, entry.content_hash)] = entry
    covered = set(paths) if paths is not None else {path for path, _, _ in wanted}
    current = embedder().name
    stored = Memory.objects.filter(project=project, kind=Memory.Kind.CODE, path__in=covered)
    kept, moved, gone = [], [], []
    for entry in stored.only("id", "path", "symbol", "content_hash", "embedding_model", "line"):
        key = (entry.path, entry.symbol, entry.content_hash)
        if key not in wanted or entry.embedding_model != current:
            gone.append(entry.id)  # removed, changed, or replaced by a new embedding below
            continue
        new = wanted.pop(key)
        kept.append(entry.id)
        if new.line != entry.line:
            entry.line = new.line
            moved.append(entry)
    fresh = list(wanted.values())
    model, vectors = _embed([_document(entry.title, entry.text) for entry in fresh])
    for entry, vector in zip(fresh, vectors, strict=True):
        entry.embedding, entry.embedding_model, entry.embedding_dim = vector, model, len(vector)
    with transaction.atomic():
        Memory.objects.filter(id__in=gone).delete()
        Memory.objects.bulk_update(moved, ["line"], batch_size=500)
        Memory.objects.filter(id__in=kept).update(updated_at=timezone.now())
        # Another process indexing the same files meanwhile stored the same rows: theirs stay.
        Memory.objects.bulk_create(fresh, batch_size=500, ignore_conflicts=True)
    return len(fresh)


def reembed_stale(project_ids: Iterable[int] | None = None, batch: int = 512) -> int:
    """Embed again, with the current model, up to `batch` entries another model embedded
    (vectors of two models are never compared). Returns how many."""
    stale = Memory.objects.exclude(embedding_model=embedder().name)
    if project_ids is not None:
        stale = stale.filter(project_id__in=list(project_ids))
    entries = list(stale.only("id", "title", "text").order_by("id")[:batch])
    if not entries:
        return 0
    model, vectors = _embed([_document(entry.title, entry.text) for entry in entries])
    for entry, vector in zip(entries, vectors, strict=True):
        entry.embedding, entry.embedding_model, entry.embedding_dim = vector, model, len(vector)
    # Not updated_at: being embedded again is not being used again.
    Memory.objects.bulk_update(
        entries, ["embedding", "embedding_model", "embedding_dim"], batch_size=500
    )
    return len(entries)


def _text_query(query: str) -> SearchQuery | None:
    """Any of the query's words, as a tsquery built from letters and digits only (nothing
    in the query can be read as tsquery syntax)."""
    words = list(dict.fromkeys(re.findall(r"[^\W_]+", query.lower())))[:MAX_QUERY_WORDS]
    if not words:
        return None
    return SearchQuery(" | ".join(words), search_type="raw", config="english")


def recall(
    project: Project,
    query: str,
    *,
    kinds: Iterable[str] | None = None,
    top_k: int | None = None,
    exclude_run: Run | None = None,
    candidates: int = 50,
) -> list[Hit]:
    """The entries most relevant to `query` among the visible projects' memory: the
    `candidates` nearest by meaning and the `candidates` best by words, fused by
    reciprocal rank. Code only when `kinds` asks for it."""
    if not query.strip():
        return []
    top_k = top_k or settings.AUTOPACK_MEMORY_TOP_K
    projects = visible_projects(project)
    reembed_stale(projects)
    entries = Memory.objects.filter(project_id__in=projects)
    if kinds is not None:
        entries = entries.filter(kind__in=list(kinds))
    else:
        entries = entries.exclude(kind=Memory.Kind.CODE)
    if exclude_run is not None:
        entries = entries.exclude(run=exclude_run)

    model, (vector,) = _embed([query])
    by_meaning = [pk for pk, _ in nearest(entries, model, vector, ("id",), candidates)]
    by_words = []
    tsquery = _text_query(query)
    if tsquery is not None:
        by_words = list(
            entries.filter(search=tsquery)
            .annotate(rank=SearchRank(F("search"), tsquery, cover_density=True))
            .order_by("-rank", "-updated_at")
            .values_list("id", flat=True)[:candidates]
        )
    vector_ranks = {pk: rank for rank, pk in enumerate(by_meaning, 1)}
    text_ranks = {pk: rank for rank, pk in enumerate(by_words, 1)}
    scores = {
        pk: sum(1 / (RRF_K + ranks[pk]) for ranks in (vector_ranks, text_ranks) if pk in ranks)
        for pk in vector_ranks.keys() | text_ranks.keys()
    }
    best = sorted(scores, key=lambda pk: (-scores[pk], pk))[:top_k]
    found = Memory.objects.select_related("run").in_bulk(best)
    return [
        Hit(found[pk], scores[pk], vector_ranks.get(pk), text_ranks.get(pk))
        for pk in best
        if pk in found
    ]


def code_scores(
    project: Project, query: str, *, paths: Iterable[str] | None = None, candidates: int = 200
) -> dict[str, float]:
    """Cosine similarity of the project's code to `query`: per path, its best chunk among
    the `candidates` nearest."""
    if not query.strip():
        return {}
    reembed_stale([project.id])
    entries = Memory.objects.filter(project=project, kind=Memory.Kind.CODE)
    if paths is not None:
        entries = entries.filter(path__in=list(paths))
    model, (vector,) = _embed([query])
    scores: dict[str, float] = {}
    for path, distance in nearest(entries, model, vector, ("path",), candidates):
        scores[path] = max(scores.get(path, -1.0), 1.0 - distance)
    return scores


def prune(now: datetime | None = None) -> int:
    """Delete entries not stored or stored again for AUTOPACK_MEMORY_TTL_DAYS."""
    cutoff = (now or timezone.now()) - timedelta(days=settings.AUTOPACK_MEMORY_TTL_DAYS)
    deleted, _ = Memory.objects.filter(updated_at__lt=cutoff).delete()
    return deleted
