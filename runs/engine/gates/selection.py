"""Which tests a phase must make pass (fail-to-pass): those its acceptance criteria name
(by test id, test file or test name) and those it added or changed."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from runs.engine.gates.results import TestResults

# A test file, by its name: named in the criteria, it must hold tests that run.
TEST_FILE = re.compile(
    r"(^|/)(test_[^/]*\.py|[^/]*_test\.(py|go)|[^/]*\.(test|spec)\.[cm]?[jt]sx?)$"
    r"|(^|/)tests/[^/]+\.rs$|(^|/)__tests__/[^/]+\.[cm]?[jt]sx?$"
)
SOURCE_SUFFIXES = (".py", ".go", ".rs", ".js", ".mjs", ".cjs", ".jsx", ".ts", ".tsx")
TOKEN_STRIP = "`'\"()[]{},;!?"

# Where a test is defined, by language: `def name(`, `func Name(`, `fn name(`.
DEFINITIONS = (
    r"^\s*(?:async\s+)?def\s+{name}\s*\(",
    r"^func\s+{name}\s*\(",
    r"\bfn\s+{name}\s*\(",
)
JS_TEST = re.compile(r"\b(?:it|test)(?:\.\w+)?\s*\(\s*(['\"`])(.+?)\1")

# A change: for each changed path, the changed line numbers of its new version, or None
# for a file the phase created.
Changes = dict[str, "set[int] | None"]


@dataclass
class Required:
    reasons: dict[str, str] = field(default_factory=dict)  # test id -> why it must pass
    missing: list[str] = field(default_factory=list)  # named tests or files that did not run


def base_name(test_id: str) -> str:
    """The test's own name: `test_b` of `tests/x.py::TestA::test_b[1]`, `TestX` of
    `pkg::TestX/case`."""
    if "::" not in test_id:  # node's test runner: the title inside its describe blocks
        return test_id.rsplit(" > ", 1)[-1]
    last = test_id.rsplit("::", 1)[-1]
    return last.split("[", 1)[0].split("/", 1)[0]


def required_tests(
    criteria: list[str],
    current: TestResults,
    reference: TestResults | None,
    changes: Changes,
    read: Callable[[str], str | None],
) -> Required:
    required = Required()
    for criterion in criteria:
        _from_criterion(criterion, current, reference, read, required)
    _from_changes(current, reference, changes, read, required)
    return required


def _tokens(criterion: str) -> list[tuple[str, bool]]:
    """The words of a criterion that may name tests, and whether each was `quoted` (a
    quoted name is meant as one, and may hold spaces: a JavaScript test's title)."""
    quoted = [(q.strip(), True) for q in re.findall(r"`([^`]+)`", criterion) if q.strip()]
    words = []
    for raw in re.sub(r"`[^`]+`", " ", criterion).split():
        kept = "'\",;!?()" if "::" in raw else TOKEN_STRIP  # ids keep their [params]
        token = raw.strip(kept).rstrip(".:").removeprefix("./")
        if token:
            words.append((token, False))
    return quoted + words


def names_tests(criteria: list[str]) -> list[str]:
    """The words of the criteria that must name tests (quoted, or shaped like a test
    file or id), whatever tests exist."""
    return [
        token
        for criterion in criteria
        for token, quoted in _tokens(criterion)
        if quoted or TEST_FILE.search(token.split("::")[0])
    ]


def _in_file(
    results: TestResults | None, path: str, read: Callable[[str], str | None]
) -> list[str]:
    """The tests of a file, however the criterion names it (`tests/test_x.py` or
    `test_x.py`). Runners that do not say a test's file (node's) are matched by the
    titles of the tests written in it."""
    if results is None:
        return []
    found = [
        t
        for t, case in results.tests.items()
        if case.file and (case.file == path or case.file.endswith("/" + path))
    ]
    text = read(path) if not found else None
    if text:
        titles = {match.group(2) for match in JS_TEST.finditer(text)}
        found = [t for t, case in results.tests.items() if not case.file and base_name(t) in titles]
    return found


def _by_id(known: set[str], token: str) -> list[str]:
    """Tests named by their id, a prefix of it (a file or class) or its end (cargo's
    `module::tests::name` without the crate)."""
    return [
        t
        for t in known
        if t == token
        or t.startswith((token + "::", token + "["))
        or t.endswith(("::" + token, " > " + token))
    ]


def _from_criterion(
    criterion: str,
    current: TestResults,
    reference: TestResults | None,
    read: Callable[[str], str | None],
    required: Required,
) -> None:
    """Tests a criterion names. A test file means every test in it, including those it
    had before the change (deleting a test does not make it pass). A word that names no
    test is prose, unless it is quoted or shaped like a test file or id: then the test
    must exist."""
    known = {*current.tests, *(reference.tests if reference else ())}
    for token, quoted in _tokens(criterion):
        path = token.split("::")[0]
        if "::" in token:
            named = _by_id(known, token)
        elif token.endswith(SOURCE_SUFFIXES):
            named = [*_in_file(current, token, read), *_in_file(reference, token, read)]
        else:
            named = [t for t in known if base_name(t) == token] or _by_id(known, token)
        if not named and not (quoted or TEST_FILE.search(path)):
            continue
        if not any(t in current.tests for t in named):
            required.missing.append(token)
        for test_id in named:
            required.reasons.setdefault(test_id, f"named in the acceptance criteria ({token})")


def _from_changes(
    current: TestResults,
    reference: TestResults | None,
    changes: Changes,
    read: Callable[[str], str | None],
    required: Required,
) -> None:
    known = set(reference.tests) if reference is not None else set()
    spans = _SpanFinder(changes, read)
    for test_id, case in current.tests.items():
        file = case.file or spans.locate(test_id)
        if not file or file not in changes:
            continue
        if test_id not in known:
            required.reasons.setdefault(test_id, f"added by this phase in {file}")
        elif changes[file] is None or spans.touched(file, test_id, case.line):
            required.reasons.setdefault(test_id, f"changed by this phase in {file}")


class _SpanFinder:
    """Where tests are defined in the changed files, and whether a change touched them."""

    def __init__(self, changes: Changes, read: Callable[[str], str | None]) -> None:
        self.changes = changes
        self.texts = {
            path: read(path) or ""
            for path in changes
            if PurePosixPath(path).suffix in SOURCE_SUFFIXES
        }

    def locate(self, test_id: str) -> str:
        for path, text in self.texts.items():
            if _definition(text, test_id) is not None:
                return path
        return ""

    def touched(self, file: str, test_id: str, line: int | None) -> bool:
        text = self.texts.get(file, "")
        start = line or _definition(text, test_id)
        if start is None:
            return False
        lines = text.splitlines()
        starts = sorted(n for n in _all_definitions(lines) if n > start)
        end = (starts[0] - 1) if starts else len(lines)
        # The body ends at its last line of code: blank lines, comments and decorators
        # before the next definition belong to what follows (a test added after it).
        while end > start and lines[end - 1].strip()[:1] in ("", "#", "@"):
            end -= 1
        changed = self.changes.get(file) or set()
        return any(start <= number <= end for number in changed)


def _definition(text: str, test_id: str) -> int | None:
    name = re.escape(base_name(test_id))
    for number, line in enumerate(text.splitlines(), start=1):
        if any(re.search(pattern.format(name=name), line) for pattern in DEFINITIONS):
            return number
        match = JS_TEST.search(line)
        if match and test_id.endswith(match.group(2)):
            return number
    return None


def _all_definitions(lines: list[str]) -> list[int]:
    any_name = r"\w+"
    numbers = []
    for number, line in enumerate(lines, start=1):
        if JS_TEST.search(line) or any(
            re.search(pattern.format(name=any_name), line) for pattern in DEFINITIONS
        ):
            numbers.append(number)
    return numbers
