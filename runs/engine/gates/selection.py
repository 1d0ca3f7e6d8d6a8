"""Which tests a phase must make pass (fail-to-pass): those its acceptance criteria name
(by test id, test file or test name) and those it added or changed."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from runs.engine.gates.results import TestResults

# Words that can only be test names (test_parse, TestParse): named, they must run. Other
# words count only when a test has that name ("Tests", "unit_test" are prose).
TEST_NAME = re.compile(r"^(?:test_\w+|Test[A-Z0-9_]\w*)$")
TEST_FILE = re.compile(
    r"(^|/)(tests?|__tests__|spec)/|(^|/)test_[^/]*\.py$|_test\.(py|go)$|\.(test|spec)\.[cm]?[jt]sx?$"
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
    last = test_id.rsplit("::", 1)[-1].rsplit(" > ", 1)[-1]
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
        _from_criterion(criterion, current, reference, required)
    _from_changes(current, reference, changes, read, required)
    return required


def _tokens(criterion: str) -> list[str]:
    tokens = []
    for raw in criterion.split():
        kept = "`'\",;!?()" if "::" in raw else TOKEN_STRIP  # ids keep their [params]
        token = raw.strip(kept).rstrip(".:").removeprefix("./")
        if token:
            tokens.append(token)
    return tokens


def _in_file(results: TestResults | None, path: str) -> list[str]:
    if results is None:
        return []
    return [
        t for t, case in results.tests.items() if case.file == path or t.startswith(path + "::")
    ]


def _from_criterion(
    criterion: str,
    current: TestResults,
    reference: TestResults | None,
    required: Required,
) -> None:
    """Tests a criterion names. A test file means every test in it, including those it
    had before the change (deleting a test does not make it pass)."""
    known = {*current.tests, *(reference.tests if reference else ())}
    for token in _tokens(criterion):
        if "::" in token:
            named = [t for t in known if t == token or t.startswith((token + "::", token + "["))]
        elif token.endswith(SOURCE_SUFFIXES):
            named = [*_in_file(current, token), *_in_file(reference, token)]
            if not named and not TEST_FILE.search(token):
                continue  # a source file the criterion mentions, not a test file
        elif TEST_NAME.match(token) or any(base_name(t) == token for t in known):
            named = [t for t in known if base_name(t) == token]
        else:
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
