"""What the Builder sees: the files of the phase's scope and read-only context that matter
for its task, within a token budget.

Choosing. Every readable file in the scope and the read-only context is a candidate
(files that look like secrets are withheld and named; binary files are left out).
Files named by the phase come first, in this order: named in the task text, acceptance
criteria or deliverables; named in the last failure's traceback or test output; changed
by the previous attempt's diff. The rest are ranked by one score, the sum of
- lexical relevance: BM25 of the file's words (identifiers split, path words weighted) for
  the task, criteria, deliverables and failure text, scaled to 1 for the best file;
- its name: words of the file's name that the task uses (at most 2);
- definitions: identifiers the task names that the file defines (2 each, at most 2),
  and task words that are names the file defines (0.25 each, at most 3);
- the repository map: personalised PageRank over definitions and references
  (repomap.rank_files) towards the task's identifiers and named files, scaled to 0.25;
- semantic similarity from the memory store's code chunks (the `similar` callable: the
  best chunk of each file), from the least to the most similar file scaled to 0..0.25.

Packing. Budgets are in tokens. A file's size is `estimate_tokens`: its characters / 4,
rounded up, plus a few tokens for its header and fences. That is on the safe side of
what Claude's tokenizer counts for source code (4.3 characters per token on flask's
source, measured with Anthropic's published tokenizer). When the provider can count
(Anthropic's token counting), the files chosen are counted once and, if the count is over
the budget, packed again with sizes scaled by the difference. Files are shown whole in
ranked order while they fit, keeping a reserve (at most 15% of the budget) for the maps
of the rest: a file that does not fit whole is shown as its map (definitions with line
numbers, so the Builder can ask for it), and a file whose map does not fit either is left
out. Every file left out is named with the reason."""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from governance.policy import matches
from runs.engine import lexical, repomap
from runs.engine.policy import _normalise_scope, _within
from runs.engine.spec import PhaseSpec
from runs.engine.workspace import list_files

CHARS_PER_TOKEN = 4
FILE_OVERHEAD_TOKENS = 12  # the header line and the fences around a file
MAP_RESERVE = 0.05  # of the budget, kept for the maps of files not shown whole
MAX_FILE_BYTES = 2_000_000  # larger files are never read whole (their map still is)
MAP_LINES = 40  # definitions listed in one file's map
CHUNK_LINES = 80  # of one symbol's code in the memory store
MAP_FIRST = 5  # files ranked this high that do not fit whole get their map before others

WEIGHT_NAME, MAX_NAME = 1.0, 2
WEIGHT_DEFINES, MAX_DEFINES = 2.0, 2
WEIGHT_DEFINES_WORD, MAX_DEFINES_WORD = 0.25, 3
WEIGHT_GRAPH = 0.25
WEIGHT_SEMANTIC = 0.25

_PATHLIKE = re.compile(r"[\w./\\-]*\w\.[A-Za-z0-9]+|[\w.-]+(?:/[\w.-]+)+")
_DIFF_PATH = re.compile(r"^(?:\+\+\+ b/|--- a/|diff --git a/)(\S+)", re.M)
_STRONG = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_MODULE = re.compile(r"\b[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+\b")  # flask.helpers, a.b.c


Chunk = tuple[str, str, int, str]  # path, symbol, line, text
# The similarity of each file to the query, from its chunks (path -> chunks).
Similar = Callable[[str, dict[str, list[Chunk]]], Mapping[str, float]]


def chunks(path: str, text: str, tags: list[repomap.Tag]) -> list[Chunk]:
    """A file's code by symbol, for semantic retrieval: (path, symbol, line, text) of
    each definition's lines up to the next definition (at most CHUNK_LINES)."""
    lines = text.splitlines()
    starts = sorted({t.line: t for t in tags if t.kind == "def"}.values(), key=lambda t: t.line)
    if not starts:
        head = "\n".join(lines[:CHUNK_LINES])
        return [(path, "", 1, f"{path}\n{head}")] if head.strip() else []
    found = []
    for tag, following in zip(starts, [*starts[1:], None], strict=True):
        end = min(following.line - 1 if following else len(lines), tag.line - 1 + CHUNK_LINES)
        body = "\n".join(lines[tag.line - 1 : end])
        found.append((path, tag.name, tag.line, f"{path} {tag.name}\n{body}"))
    return found


def estimate_tokens(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN) + FILE_OVERHEAD_TOKENS


@dataclass(frozen=True)
class Signals:
    """What the context is chosen for besides the phase itself."""

    failure: str = ""  # the last failure's feedback: test output, traceback, errors
    diff: str = ""  # the previous attempt's change


@dataclass
class Context:
    files: list[tuple[str, str, str]] = field(default_factory=list)  # path, note, content
    maps: list[tuple[str, str, str]] = field(default_factory=list)  # path, note, map
    left_out: list[tuple[str, str]] = field(default_factory=list)  # path, reason
    withheld: list[str] = field(default_factory=list)  # secrets by the project's policy
    ranking: list[str] = field(default_factory=list)  # every candidate, best first
    why: dict[str, str] = field(default_factory=dict)  # path -> why it ranks where it does
    budget_tokens: int = 0
    used_tokens: int = 0
    counted_by: str = "estimate"

    @property
    def included(self) -> list[str]:
        return [path for path, _, _ in self.files]

    @property
    def omitted(self) -> list[str]:
        return [path for path, _, _ in self.maps] + [path for path, _ in self.left_out]

    def record(self) -> dict:
        """What the attempt stores: shown whole, shown as map, left out, and why."""
        return {
            "budget_tokens": self.budget_tokens,
            "used_tokens": self.used_tokens,
            "counted_by": self.counted_by,
            "whole": [{"path": p, "why": self.why.get(p, "")} for p in self.included],
            "map": [
                {"path": p, "why": self.why.get(p, ""), "reason": "did not fit whole"}
                for p, _, _ in self.maps
            ],
            "left_out": [{"path": p, "reason": reason} for p, reason in self.left_out],
            "withheld": list(self.withheld),
        }


@dataclass
class _Candidate:
    path: str
    note: str
    text: str | None  # None: not readable as text
    tags: list[repomap.Tag] = field(default_factory=list)


def readable(root: Path, path: str) -> str | None:
    """The file's text; None for a binary, oversized, missing or symlinked file."""
    file = root / path
    if not file.is_file() or file.is_symlink() or file.stat().st_size > MAX_FILE_BYTES:
        return None
    data = file.read_bytes()
    if b"\0" in data[:8192]:
        return None  # binary
    return data.decode("utf-8", errors="replace")


def candidates(root: Path, spec: PhaseSpec) -> tuple[list[tuple[str, str]], list[str]]:
    """(path, note) of every file the Builder may be shown, and the withheld ones."""
    files = sorted(set(list_files(root)))
    wanted: list[tuple[str, str]] = []
    for entry in spec.scope_paths:
        prefix = _normalise_scope(entry)
        wanted += [(path, "editable") for path in files if _within(path, prefix)]
    for path, reason in spec.read_only_context:
        prefix = _normalise_scope(path)
        note = "read-only" + (f": {reason}" if reason else "")
        wanted += [(found, note) for found in files if _within(found, prefix)]
    seen: set[str] = set()
    chosen, withheld = [], []
    for path, note in wanted:
        if path in seen:
            continue
        seen.add(path)
        if any(matches(path, pattern) for pattern in spec.withheld):
            withheld.append(path)
        else:
            chosen.append((path, note))
    return chosen, withheld


def named_paths(text: str, paths: list[str]) -> list[str]:
    """Candidate paths that `text` names, in the order it names them: a whole path, the
    end of a longer one (an absolute path in a traceback), or a unique file name."""
    by_name: dict[str, list[str]] = {}
    for path in paths:
        by_name.setdefault(path.rsplit("/", 1)[-1], []).append(path)
    known = set(paths)
    found: list[str] = []
    for token in _PATHLIKE.findall(text.replace("\\", "/")):
        token = token.strip("./") if not token.startswith("./") else token[2:]
        hits: list[str] = []
        if token in known:
            hits = [token]
        elif "/" in token:
            hits = [p for p in paths if token.endswith("/" + p) or p.endswith("/" + token)]
        elif len(by_name.get(token, [])) == 1:
            hits = by_name[token]
        found += [hit for hit in hits if hit not in found]
    for dotted in _MODULE.findall(text):  # a module by its dotted name
        parts = dotted.split(".")
        for end in range(len(parts), 1, -1):
            stem = "/".join(parts[:end])
            hits = [
                p
                for p in paths
                if p.rsplit(".", 1)[0].endswith("/" + stem)
                or p.rsplit(".", 1)[0] == stem
                or p.endswith("/" + stem + "/__init__.py")
            ]
            if hits:
                found += [hit for hit in hits if hit not in found]
                break
    return found


def _first(spec: PhaseSpec, signals: Signals, paths: list[str]) -> dict[str, str]:
    """Files the phase names, with why, in the order they come first."""
    sources = [
        (
            "named in the task",
            "\n".join([spec.task_name, spec.description, *spec.acceptance_criteria]),
        ),
        ("a deliverable", "\n".join(spec.deliverables)),
        ("in the last failure", signals.failure),
        ("changed by the previous attempt", "\n".join(_DIFF_PATH.findall(signals.diff))),
    ]
    first: dict[str, str] = {}
    for why, text in sources:
        for path in named_paths(text, paths) if text else []:
            first.setdefault(path, why)
    return first


def _strong_identifiers(text: str) -> set[str]:
    """Identifiers that cannot be ordinary words: snake_case, camelCase, dotted calls."""
    return {
        word
        for word in _STRONG.findall(text)
        if "_" in word.strip("_") or re.search(r"[a-z][A-Z]", word)
    }


def query_text(spec: PhaseSpec) -> str:
    return "\n".join(
        [spec.task_name, spec.description, *spec.acceptance_criteria, *spec.deliverables]
    )


def rank(
    spec: PhaseSpec,
    signals: Signals,
    files: list[_Candidate],
    semantic: Mapping[str, float],
) -> tuple[list[str], dict[str, str]]:
    """Every candidate's path, best first, and why each ranks where it does."""
    paths = [c.path for c in files]
    first = _first(spec, signals, paths)
    query_text_ = query_text(spec)
    query = lexical.terms(query_text_ + "\n" + signals.failure[-4000:])
    words = set(query)
    documents = {c.path: lexical.document(c.path, c.text or "") for c in files}
    lexical_scores = lexical.bm25(query, documents)
    best_lexical = max(lexical_scores.values(), default=0.0) or 1.0
    strong = {repomap.normalise_ident(w) for w in _strong_identifiers(query_text_)}
    idents = repomap.identifiers(query_text_ + "\n" + signals.failure[-4000:])
    graph = repomap.rank_files({c.path: c.tags for c in files}, idents=idents, paths=set(first))
    best_graph = max(graph.values(), default=0.0) or 1.0
    low = min(semantic.values(), default=0.0)
    spread = (max(semantic.values(), default=0.0) - low) or 1.0
    # Words of file names (test, utils, py...) that many files share say nothing.
    name_words = {
        c.path: set(lexical.terms(c.path.rsplit("/", 1)[-1].rsplit(".", 1)[0])) for c in files
    }
    shared = Counter(word for found in name_words.values() for word in found)
    common_names = {w for w, n in shared.items() if n > max(2, len(files) // 10)}
    scores: dict[str, float] = {}
    why: dict[str, str] = {}
    for c in files:
        named = len(name_words[c.path] & words - common_names)
        defined = {repomap.normalise_ident(t.name) for t in c.tags if t.kind == "def"}
        parts = {
            "lexical": lexical_scores.get(c.path, 0.0) / best_lexical,
            "name": WEIGHT_NAME * min(named, MAX_NAME),
            "defines": WEIGHT_DEFINES * min(len(defined & strong), MAX_DEFINES),
            "defines words": WEIGHT_DEFINES_WORD * min(len(defined & idents), MAX_DEFINES_WORD),
            "graph": WEIGHT_GRAPH * graph.get(c.path, 0.0) / best_graph,
            "semantic": WEIGHT_SEMANTIC * (semantic.get(c.path, low) - low) / spread,
        }
        scores[c.path] = sum(parts.values())
        why[c.path] = first.get(c.path) or "score {:.2f} ({})".format(
            scores[c.path], ", ".join(f"{k} {v:.2f}" for k, v in parts.items() if v >= 0.01)
        )
    rest = sorted((p for p in paths if p not in first), key=lambda p: (-scores[p], p))
    return list(first) + rest, why


def select(
    root: Path,
    spec: PhaseSpec,
    budget_tokens: int,
    signals: Signals = Signals(),
    index: repomap.TagIndex | None = None,
    count: Callable[[str], int | None] | None = None,
    counter_name: str = "",
    similar: Similar | None = None,
) -> Context:
    """The Builder's context for the phase (see the module docstring)."""
    index = index if index is not None else repomap.TagIndex()
    chosen, withheld = candidates(root, spec)
    files: list[_Candidate] = []
    unreadable: list[str] = []
    for path, note in chosen:
        text = readable(root, path)
        if text is None:
            unreadable.append(path)
            continue
        files.append(_Candidate(path, note, text, index.tags(path, text)))
    semantic: Mapping[str, float] = {}
    if similar is not None:
        pieces = {c.path: chunks(c.path, c.text or "", c.tags) for c in files}
        semantic = similar(query_text(spec), pieces)
    ranking, why = rank(spec, signals, files, semantic)
    by_path = {c.path: c for c in files}
    context = _pack(ranking, by_path, budget_tokens, scale=1.0)
    counted = count(_shown_text(context)) if count is not None and context.files else None
    if counted is not None and counted > budget_tokens and context.used_tokens:
        # The provider counts more than the estimate: pack again at its rate.
        context = _pack(ranking, by_path, budget_tokens, counted / context.used_tokens * 1.02)
    if counted is not None:
        context.counted_by = counter_name or "provider"
    context.withheld = withheld
    context.left_out += [(path, "not a text file") for path in unreadable]
    context.ranking, context.why = ranking, why
    return context


def _shown_text(context: Context) -> str:
    return "\n".join(content for _, _, content in context.files + context.maps)


def _pack(ranking: list[str], files: dict[str, _Candidate], budget: int, scale: float) -> Context:
    context = Context(budget_tokens=budget)
    size = {p: math.ceil(estimate_tokens(files[p].text or "") * scale) for p in ranking}
    maps = {
        p: repomap.render_map(p, files[p].tags, limit=MAP_LINES) if files[p].tags else ""
        for p in ranking
    }
    map_size = {p: math.ceil(estimate_tokens(maps[p]) * scale) if maps[p] else 0 for p in ranking}
    reserve = min(int(budget * MAP_RESERVE), sum(map_size.values()))
    remaining = budget
    whole: list[str] = []
    mapped: list[str] = []
    for rank, path in enumerate(ranking):  # whole files, keeping the reserve for maps
        if size[path] <= remaining - reserve:
            whole.append(path)
            remaining -= size[path]
        elif rank < MAP_FIRST and maps[path] and map_size[path] <= remaining:
            mapped.append(path)  # a top file too large to show whole: its map at once
            remaining -= map_size[path]
            reserve = max(0, reserve - map_size[path])
    for path in ranking:  # the maps of the rest
        if path not in whole and path not in mapped and maps[path]:
            if map_size[path] <= remaining:
                mapped.append(path)
                remaining -= map_size[path]
    for path in list(mapped):  # what is left: more files whole instead of their map
        if size[path] - map_size[path] <= remaining:
            mapped.remove(path)
            whole.append(path)
            remaining -= size[path] - map_size[path]
    shown = set(whole)
    for path in ranking:
        candidate = files[path]
        if path in shown:
            context.files.append((path, candidate.note, candidate.text or ""))
        elif path in mapped:
            context.maps.append((path, candidate.note, maps[path]))
        elif maps[path]:
            context.left_out.append((path, "no room left in the budget, not even for its map"))
        else:
            reason = "no room left in the budget (and no definitions to map)"
            context.left_out.append((path, reason))
    context.used_tokens = budget - remaining
    return context
