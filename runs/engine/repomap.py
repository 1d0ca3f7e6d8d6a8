"""A map of a repository: which files define the names a task talks about, and which files
the rest of the code leans on.

Every source file is parsed with tree-sitter and reduced to tags: the names it defines
(classes, functions, methods, types, module constants) and the names it refers to (calls,
and for Python also imported names and attribute names). The grammars and their tags
queries ship inside the installed wheels; nothing is downloaded.

Files are then ranked the way aider ranks them: a file that refers to a name points at each
file that defines that name, and PageRank over those links says which files many others
depend on. The ranking is personalised: files the caller names, and files that define an
identifier mentioned in the task, start with all the weight and pass it on to what they
use, so the top of the ranking is the neighbourhood of the task rather than the whole
repository's most popular modules. Links through names the task mentions count ten times
more; private names and names defined in many files count a tenth.

`render_map` shows a file as its definition lines, a cheap stand-in for its full text.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import math
import os
import re
import tempfile
import threading
from collections import Counter, defaultdict
from dataclasses import dataclass
from functools import cache
from importlib import metadata, resources
from pathlib import Path, PurePath

import numpy as np
from tree_sitter import Language, Node, Parser, Query, QueryCursor, QueryError

_EXTENSIONS = {
    ".py": "python",
    ".pyi": "python",
    ".js": "javascript",
    ".mjs": "javascript",
    ".cjs": "javascript",
    ".jsx": "javascript",
    ".ts": "typescript",
    ".tsx": "tsx",
    ".go": "go",
    ".rs": "rust",
}

# language -> (grammar module, its function returning the language, packages whose
# queries/tags.scm make up the query). The TypeScript package's tags only cover what
# TypeScript adds, so it is read together with JavaScript's, as aider does.
_GRAMMARS = {
    "python": ("tree_sitter_python", "language", ("tree_sitter_python",)),
    "javascript": ("tree_sitter_javascript", "language", ("tree_sitter_javascript",)),
    "typescript": (
        "tree_sitter_typescript",
        "language_typescript",
        ("tree_sitter_javascript", "tree_sitter_typescript"),
    ),
    "tsx": (
        "tree_sitter_typescript",
        "language_tsx",
        ("tree_sitter_javascript", "tree_sitter_typescript"),
    ),
    "go": ("tree_sitter_go", "language", ("tree_sitter_go",)),
    "rust": ("tree_sitter_rust", "language", ("tree_sitter_rust",)),
}

# Added to each package's tags.scm. The shipped queries count little besides calls as
# references: in Python a name is as often imported or read off an object; in JavaScript
# imported and extended; TypeScript's own tags leave out type aliases and enums; TypeScript
# and Rust use types without calling them, and most Rust calls are `Type::function()`.
_EXTRA_QUERIES = {
    "tree_sitter_python": """
(import_from_statement name: (dotted_name (identifier) @name)) @reference.import
(import_from_statement
  name: (aliased_import name: (dotted_name (identifier) @name))) @reference.import
(attribute attribute: (identifier) @name) @reference.attribute
""",
    "tree_sitter_javascript": """
(import_specifier name: (identifier) @name) @reference.import
(class_heritage (identifier) @name) @reference.class
""",
    "tree_sitter_typescript": """
(type_alias_declaration name: (type_identifier) @name) @definition.type
(enum_declaration name: (identifier) @name) @definition.enum
(extends_clause value: (identifier) @name) @reference.class
(type_identifier) @name @reference.type
""",
    "tree_sitter_rust": """
(call_expression function: (scoped_identifier path: (identifier) @name)) @reference.call
(call_expression function: (scoped_identifier name: (identifier) @name)) @reference.call
(type_identifier) @name @reference.type
""",
}

# Part of GRAMMAR_VERSION: change it when the way tags are extracted from matches changes.
_TAG_FORMAT = "1"

_SIGNATURE_LIMIT = 200


@dataclass(frozen=True, slots=True)
class Tag:
    name: str
    kind: str  # "def" or "ref"
    line: int  # 1-based line of the name
    text: str = ""  # definitions only: the stripped line the name is on


def language_of(path: str) -> str | None:
    return _EXTENSIONS.get(PurePath(path).suffix.lower())


@cache
def _query_text(language: str) -> str:
    _, _, packages = _GRAMMARS[language]
    return "\n".join(
        (resources.files(package) / "queries" / "tags.scm").read_text()
        + _EXTRA_QUERIES.get(package, "")
        for package in packages
    )


def _grammar_version() -> str:
    digest = hashlib.sha256(f"tree-sitter {metadata.version('tree-sitter')}\n".encode())
    digest.update(f"tags {_TAG_FORMAT}\n".encode())
    for language, (module, _, _) in sorted(_GRAMMARS.items()):
        digest.update(f"{language} {metadata.version(module)}\n".encode())
        digest.update(_query_text(language).encode())
    return digest.hexdigest()[:16]


GRAMMAR_VERSION = _grammar_version()


def _patterns(query: str) -> list[str]:
    """The top-level patterns of a query, each with the captures and predicates after it."""
    patterns: list[str] = []
    depth, start, i = 0, -1, 0
    while i < len(query):
        char = query[i]
        if char == ";":  # a comment runs to the end of the line
            i = query.find("\n", i)
            if i < 0:
                break
        elif char == '"':  # strings may hold brackets and escaped quotes
            i += 1
            while query[i] != '"':
                i += 2 if query[i] == "\\" else 1
        elif char in "([":
            if depth == 0:
                if start >= 0:
                    patterns.append(query[start:i])
                start = i
            depth += 1
        elif char in ")]":
            depth -= 1
        i += 1
    if start >= 0:
        patterns.append(query[start:])
    return patterns


def _compiled_query(language: Language, text: str) -> Query:
    """The query made of those patterns that compile against this grammar: a query written
    for one grammar (JavaScript's) may name nodes another (TypeScript's) does not have."""
    usable = []
    for pattern in _patterns(text):
        try:
            # A new string each time: on a QueryError, py-tree-sitter 0.25 overwrites the
            # newlines of the str it was given with NULs, in place.
            Query(language, pattern + "\n")
        except QueryError:
            continue
        usable.append(pattern)
    return Query(language, "\n".join(usable))


# Parsers are not safe to share between threads; one lock guards building and using them.
_LOCK = threading.Lock()
_TAGGERS: dict[str, tuple[Parser, Query]] = {}


def _tagger(language: str) -> tuple[Parser, Query]:
    if language not in _TAGGERS:
        module, function, _ = _GRAMMARS[language]
        grammar = Language(getattr(importlib.import_module(module), function)())
        query = _compiled_query(grammar, _query_text(language))
        _TAGGERS[language] = (Parser(grammar), query)
    return _TAGGERS[language]


def syntax_tree(path: str, text: str) -> Node | None:
    """The parsed file, for a language the map knows (None for others)."""
    language = language_of(path)
    if language is None:
        return None
    with _LOCK:
        parser, _ = _tagger(language)
        return parser.parse(text.encode()).root_node


def file_tags(path: str, text: str) -> list[Tag]:
    """Definitions and references in one file, in line order. tree-sitter recovers from
    syntax errors, so a broken file still gives the tags of its intact parts."""
    language = language_of(path)
    if language is None:
        return []
    source = text.encode("utf-8", "replace")
    with _LOCK:
        parser, query = _tagger(language)
        tree = parser.parse(source)
    lines = source.split(b"\n")
    found: dict[tuple[int, str], Tag] = {}
    for _, captures in QueryCursor(query).matches(tree.root_node):
        kind = _kind(captures)
        if kind is None:
            continue
        for node in captures.get("name", ()):
            key = (node.start_byte, kind)
            if key in found:  # the same node matched by two patterns
                continue
            row = node.start_point.row
            name = source[node.start_byte : node.end_byte].decode("utf-8", "replace")
            signature = ""
            if kind == "def":
                signature = lines[row].decode("utf-8", "replace").strip()[:_SIGNATURE_LIMIT]
            found[key] = Tag(name, kind, row + 1, signature)
    return [found[key] for key in sorted(found)]


def _kind(captures: dict[str, list[Node]]) -> str | None:
    # Some patterns (Go's package and import names) capture a name without saying whether
    # it is defined or referenced; those are not tags.
    for capture in captures:
        if capture.startswith("definition."):
            return "def"
    for capture in captures:
        if capture.startswith("reference."):
            return "ref"
    return None


class TagIndex:
    """Tags of many files, cached by content hash so an unchanged file is never parsed
    twice: in memory, and on disk when given a directory (one JSON file per content)."""

    def __init__(self, cache_dir: Path | None = None):
        self.cache_dir = cache_dir
        self.hits = 0
        self.misses = 0
        self._memory: dict[str, list[Tag]] = {}

    def tags(self, path: str, text: str) -> list[Tag]:
        language = language_of(path)
        if language is None:
            return []
        digest = hashlib.sha256(f"{GRAMMAR_VERSION}\0{language}\0".encode())
        digest.update(text.encode("utf-8", "surrogatepass"))
        key = digest.hexdigest()
        tags = self._memory.get(key)
        if tags is None and self.cache_dir is not None:
            tags = self._read(key)
        if tags is None:
            self.misses += 1
            tags = file_tags(path, text)
            if self.cache_dir is not None:
                self._write(key, tags)
        else:
            self.hits += 1
        self._memory[key] = tags
        return list(tags)

    def _file(self, key: str) -> Path:
        assert self.cache_dir is not None
        return self.cache_dir / key[:2] / f"{key}.json"

    def _read(self, key: str) -> list[Tag] | None:
        try:
            rows = json.loads(self._file(key).read_bytes())
            if not isinstance(rows, list):
                return None
            return [Tag(*row) for row in rows]
        except FileNotFoundError:
            return None
        except (ValueError, TypeError):
            return None  # a damaged entry: the caller parses again and overwrites it

    def _write(self, key: str, tags: list[Tag]) -> None:
        file = self._file(key)
        file.parent.mkdir(parents=True, exist_ok=True)
        rows = [
            [t.name, t.kind, t.line, t.text] if t.text else [t.name, t.kind, t.line] for t in tags
        ]
        # Written aside and renamed into place, so a reader never sees half an entry.
        fd, temporary = tempfile.mkstemp(dir=file.parent, suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as out:
                json.dump(rows, out, separators=(",", ":"))
            os.replace(temporary, file)
        except BaseException:
            os.unlink(temporary)
            raise


def normalise_ident(name: str) -> str:
    """The form in which identifiers are matched: `Blueprints` and `blueprint` are one."""
    name = name.lower()
    if len(name) > 3 and name.endswith("s"):
        name = name[:-1]
    return name


def _multiplier(name: str, definers: int, idents: set[str] | frozenset[str]) -> float:
    mul = 1.0
    if normalise_ident(name) in idents:
        mul *= 10
    if name.startswith("_"):
        mul *= 0.1
    if definers > 5:
        mul *= 0.1
    return mul


def rank_files(
    tags: dict[str, list[Tag]],
    *,
    idents: set[str] | frozenset[str] = frozenset(),
    paths: set[str] | frozenset[str] = frozenset(),
) -> dict[str, float]:
    """Personalised PageRank of the files in `tags`; the scores sum to 1.

    The graph has an edge from file R to file D for every name R refers to and D defines
    (D other than R), weighted by `_multiplier` times the square root of how often R uses
    the name. Rank flows along edges through the name rather than edge by edge, which gives
    the same result while a name defined in m files and used in n costs m + n, not m * n.
    """
    files = list(tags)
    if not files:
        return {}
    definers: dict[str, set[int]] = defaultdict(set)
    uses: dict[str, Counter[int]] = defaultdict(Counter)
    for index, file in enumerate(files):
        for tag in tags[file]:
            if tag.kind == "def":
                definers[tag.name].add(index)
            else:
                uses[tag.name][index] += 1

    # One entry per (referring file, name): the file, the name's number, the weight of
    # each of its edges, and how many files other than itself define the name.
    use_file, use_name, use_weight, use_targets = [], [], [], []
    def_file, def_name = [], []
    self_uses = []  # entries whose file defines the name too: no edge back to itself
    names = [name for name in uses if name in definers]
    for number, name in enumerate(names):
        owners = definers[name]
        def_file.extend(owners)
        def_name.extend([number] * len(owners))
        mul = _multiplier(name, len(owners), idents)
        for file, count in uses[name].items():
            targets = len(owners) - (file in owners)
            if not targets:
                continue
            if file in owners:
                self_uses.append(len(use_file))
            use_file.append(file)
            use_name.append(number)
            use_weight.append(mul * math.sqrt(count))
            use_targets.append(targets)

    n = len(files)
    use_file_a = np.array(use_file, dtype=np.intp)
    use_name_a = np.array(use_name, dtype=np.intp)
    weight = np.array(use_weight, dtype=float)
    out = np.bincount(use_file_a, weight * np.array(use_targets, dtype=float), minlength=n)
    per_edge = weight / out[use_file_a]
    def_file_a = np.array(def_file, dtype=np.intp)
    def_name_a = np.array(def_name, dtype=np.intp)
    self_a = np.array(self_uses, dtype=np.intp)
    dangling = out == 0

    personal = _personalisation(files, tags, idents, paths)
    rank = personal.copy()
    for _ in range(100):
        share = rank[use_file_a] * per_edge  # what each entry sends along each of its edges
        into_name = np.bincount(use_name_a, share, minlength=len(names))
        inflow = np.bincount(def_file_a, into_name[def_name_a], minlength=n)
        inflow -= np.bincount(use_file_a[self_a], share[self_a], minlength=n)
        new = 0.15 * personal + 0.85 * (inflow + rank[dangling].sum() * personal)
        change = np.abs(new - rank).sum()
        rank = new
        if change < 1e-6:
            break
    rank = np.maximum(rank, 0)  # the subtraction above can leave -1e-18 where 0 is meant
    rank /= rank.sum()
    return {file: float(score) for file, score in zip(files, rank, strict=True)}


def _personalisation(
    files: list[str],
    tags: dict[str, list[Tag]],
    idents: set[str] | frozenset[str],
    paths: set[str] | frozenset[str],
) -> np.ndarray:
    wanted = np.array(
        [
            file in paths
            or any(t.kind == "def" and normalise_ident(t.name) in idents for t in tags[file])
            for file in files
        ],
        dtype=float,
    )
    if not wanted.any():
        wanted[:] = 1
    return wanted / wanted.sum()


def render_map(path: str, tags: list[Tag], *, limit: int | None = None) -> str:
    """The file as its definition lines, for a prompt that cannot afford the whole file."""
    lines: dict[int, str] = {}
    for tag in tags:
        if tag.kind == "def":
            lines.setdefault(tag.line, tag.text)
    numbers = sorted(lines)
    shown = numbers if limit is None else numbers[:limit]
    out = [f"{path} (map: {len(numbers)} definitions; ask for the whole file if you need it)"]
    out += [f"  {number}│ {lines[number]}" for number in shown]
    if len(shown) < len(numbers):
        out.append(f"  … {len(numbers) - len(shown)} more")
    return "\n".join(out)


# Words common in task descriptions and tracebacks that would otherwise match definitions
# by accident (a method `add`, a fixture `file`).
_STOP_WORDS = frozenset(
    """
    the and for with that this from when not are use add fix make should must can will
    have has was were been but into then than also any all each its our you your they
    there which what where who how why does did new only same other more some such like
    just after before would could instead file line most recent call last traceback
    """.split()
)

_TOKEN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def identifiers(text: str) -> set[str]:
    """Identifiers named in free text (a task, acceptance criteria, a traceback), normalised.

    Words of three or more characters, minus common English ones. Dots, slashes and other
    punctuation separate words, so `a.b.c` gives each of its parts and `src/flask/app.py`
    gives `src`, `flask` and `app`.
    """
    found = set()
    for token in _TOKEN.findall(text):
        lower = token.lower()
        if len(token) < 3 or lower in _STOP_WORDS:
            continue
        name = normalise_ident(token)
        if name not in _STOP_WORDS:
            found.add(name)
    return found
