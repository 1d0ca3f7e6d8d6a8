"""A failure's signature: its message with the parts that vary between occurrences
(paths, numbers, ids, timestamps, quoted values) taken out, hashed."""

from __future__ import annotations

import hashlib
import re

_PATTERNS = [
    (re.compile(r"\b\d{4}-\d{2}-\d{2}[T ][\d:.]+(?:Z|[+-]\d{2}:?\d{2})?"), "<time>"),
    (re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.I), "<id>"),
    (re.compile(r"\b[0-9a-f]{7,40}\b"), "<hash>"),
    (re.compile(r"(?:[\w.-]*/)+[\w.-]+"), "<path>"),
    (re.compile(r"0x[0-9a-f]+", re.I), "<addr>"),
    (re.compile(r"\d+"), "<n>"),
    (re.compile(r"'[^']*'|\"[^\"]*\""), "<str>"),
    (re.compile(r"\s+"), " "),
]


def normalise(message: str) -> str:
    text = message.strip().splitlines()[0] if message.strip() else ""
    for pattern, placeholder in _PATTERNS:
        text = pattern.sub(placeholder, text)
    return text.strip().lower()


def signature(outcome: str, message: str) -> str:
    return hashlib.sha1(f"{outcome}|{normalise(message)}".encode()).hexdigest()[:16]
