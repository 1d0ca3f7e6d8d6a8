"""Text the database cannot store: a NUL character (PostgreSQL text cannot hold it) or a
lone UTF-16 surrogate (psycopg cannot encode it). Found anywhere in decoded JSON, each
problem named by its JSON path (`tiers[0].name`). No Django: the run config uses it too."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

NUL = "\x00"

Problem = tuple[str, str]


def nul_issue(text: str) -> str | None:
    if NUL in text:
        return "contains a NUL character (\\x00), which cannot be stored; remove it"
    return None


def text_issue(text: str) -> str | None:
    """What makes `text` unstorable, or None."""
    if issue := nul_issue(text):
        return issue
    try:
        text.encode()
    except UnicodeEncodeError as exc:
        return (
            f"contains {ascii(text[exc.start])}, half of a UTF-16 surrogate pair, which is "
            "not valid Unicode; send whole characters"
        )
    return None


def shown(name: str) -> str:
    """`name` with NUL and lone surrogates escaped, safe to echo in an error."""
    return name.replace(NUL, "\\x00").encode("utf-8", "backslashreplace").decode()


def join_path(path: str, key: object) -> str:
    return f"{path}.{key}" if path else str(key)


def data_problems(
    data: Any, issue: Callable[[str], str | None] = text_issue, root: str = "(body)"
) -> list[Problem]:
    """Every string and key of decoded JSON with an `issue`, named by its path (`root`
    for the document itself)."""
    problems = []
    queue = deque([("", data)])
    while queue:
        path, value = queue.popleft()
        if isinstance(value, str) and (found := issue(value)):
            problems.append((path or root, found))
        elif isinstance(value, dict):
            for key, item in value.items():
                key_path = join_path(path, shown(str(key)))
                if isinstance(key, str) and (found := issue(key)):
                    problems.append((key_path, f"is a key that {found}"))
                queue.append((key_path, item))
        elif isinstance(value, list):
            queue.extend((f"{path}[{index}]", item) for index, item in enumerate(value))
    return problems
