"""Lexical retrieval in process: Okapi BM25 over the words of files, with identifiers
split into their parts (`add_url_rule` and `addUrlRule` both give add, url, rule) and a
light stemmer, so "blueprints" in a task finds `Blueprint`. A file's words are cached by
its content hash, so an unchanged file is read into words once per process."""

from __future__ import annotations

import hashlib
import math
import re
import threading
from collections import Counter
from collections.abc import Iterable, Mapping
from functools import lru_cache

K1 = 1.2
B = 0.75
PATH_WEIGHT = 3  # a file's path words count this many times: the name says what it is

_CAMEL = re.compile(r"([a-z0-9])([A-Z])")
_WORD = re.compile(r"[a-z0-9]+")
STOP_WORDS = frozenset(
    "a an and are as at be by for from has have if in into is it its not of on or that the "
    "this to was were will with".split()
)
_SUFFIXES = ("ing", "ed", "es", "s")
_cache: dict[str, Counter] = {}
_lock = threading.Lock()
MAX_CACHED = 50_000


@lru_cache(maxsize=200_000)
def stem(word: str) -> str:
    for suffix in _SUFFIXES:
        if len(word) > len(suffix) + 3 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


def terms(text: str) -> list[str]:
    """The words of `text` for matching: identifiers split, lower case, stemmed."""
    split = _CAMEL.sub(r"\1 \2", text).lower()
    return [stem(w) for w in _WORD.findall(split) if len(w) > 1 and w not in STOP_WORDS]


def counts(text: str) -> Counter:
    """`Counter(terms(text))`, counting before stemming: each distinct word once."""
    raw = Counter(_WORD.findall(_CAMEL.sub(r"\1 \2", text).lower()))
    counted: Counter = Counter()
    for word, n in raw.items():
        if len(word) > 1 and word not in STOP_WORDS:
            counted[stem(word)] += n
    return counted


def document(path: str, text: str) -> Counter:
    """A file's word counts (its path words weighted), cached by content hash."""
    key = hashlib.sha1(f"{path}\0{text}".encode(errors="replace")).hexdigest()
    with _lock:
        found = _cache.get(key)
    if found is not None:
        return found
    found = counts(text)
    for word in terms(path):
        found[word] += PATH_WEIGHT
    with _lock:
        if len(_cache) >= MAX_CACHED:
            _cache.clear()
        _cache[key] = found
    return found


def bm25(query: Iterable[str], documents: Mapping[str, Counter]) -> dict[str, float]:
    """BM25 score of every document for the query's words (each word once)."""
    words = set(query)
    if not documents:
        return {}
    lengths = {key: sum(doc.values()) for key, doc in documents.items()}
    average = (sum(lengths.values()) / len(documents)) or 1.0
    frequency = Counter(w for doc in documents.values() for w in words if w in doc)
    total = len(documents)
    idf = {w: math.log(1 + (total - n + 0.5) / (n + 0.5)) for w, n in frequency.items()}
    scores: dict[str, float] = {}
    for key, doc in documents.items():
        norm = K1 * (1 - B + B * lengths[key] / average)
        scores[key] = sum(idf[w] * doc[w] * (K1 + 1) / (doc[w] + norm) for w in idf if w in doc)
    return scores
