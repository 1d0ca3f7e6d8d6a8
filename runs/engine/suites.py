"""Benchmark suites: the tasks of an Exercism-format directory (aider's polyglot layout) or
of a SWE-bench-format JSONL file, each ready to become a one-phase run.

    tasks = load("../shared/bench/polyglot", languages=["python"], limit=5)
    tasks[0].files        # what the task's repository holds at its base commit
    tasks[0].reference    # path -> (content at the base, content of the reference)

A task's reference solution stays outside its repository: only the benchmark's scripted
models read it (runs/engine/providers/bench_models.py).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

EXERCISES = "exercises/practice"
# A Builder must not change these: they are the exercise's dependency manifests, which
# governance protects, and the reference never needs to.
MANIFESTS = ("Cargo.toml", "go.mod", "package.json")
# aider's benchmark appends this to every exercise's instructions.
INSTRUCTIONS_TAIL = (
    "Use the above instructions to modify the supplied files: {files}\n"
    "Don't change the names of existing functions or classes, as they may be referenced "
    "from other code like unit tests, etc.\n"
    "Only use standard libraries, don't suggest installing any packages."
)
# Exercism's JavaScript and Rust tracks skip all but the first test for learners; a
# benchmark runs them all, as aider's does.
TEST_COMMANDS = {"rust": "cargo test --no-fail-fast -- --include-ignored"}
JS_SKIPPED_TEST = re.compile(r"\bxtest\(|\bxit\(")
# Exercism lists helper modules among an exercise's test files (python/paasio's
# test_utils.py); a file with no test of its own is not one the phase must make pass.
DEFINES_TESTS = re.compile(r"\bdef test|\bfunc Test|#\[test\]|\b(?:test|it)\s*\(")


class SuiteError(ValueError):
    """A suite that cannot be read: the message names the file and what is wrong."""


@dataclass
class Task:
    task_id: str  # "python/bowling", or a SWE-bench instance id
    language: str
    instructions: str
    scope: list[str]
    criteria: list[str]
    files: dict[str, str] = field(default_factory=dict)  # the repository, for exercises
    reference: dict[str, tuple[str | None, str]] = field(default_factory=dict)
    test_command: str = ""
    # SWE-bench instances: the repository, its base commit and the patches.
    repository: str = ""
    base_commit: str = ""
    test_patch: str = ""
    gold_patch: str = ""
    fail_to_pass: list[str] = field(default_factory=list)
    pass_to_pass: list[str] = field(default_factory=list)
    tests_text: str = ""  # what the tests say: the mutant leaves a function they call
    problem: str = ""  # why the task cannot be tried, when it cannot


def load(suite: Path, languages: list[str] | None = None, limit: int | None = None) -> list[Task]:
    """Every task of the suite, in a stable order (language, then name)."""
    if suite.is_file():
        tasks = load_swebench(suite)
    elif suite.is_dir():
        tasks = load_exercism(suite, languages)
    else:
        raise SuiteError(
            f"{suite}: no such file or folder (give an Exercism-format folder "
            "or a SWE-bench-format .jsonl file)"
        )
    if languages:
        tasks = [t for t in tasks if t.language in languages]
    return tasks[:limit] if limit else tasks


def load_exercism(root: Path, languages: list[str] | None = None) -> list[Task]:
    found = sorted({p.parents[3] for p in root.glob(f"*/{EXERCISES}/*/.meta")})
    available = sorted({p.name for p in found})
    if not available:
        raise SuiteError(f"{root}: no exercises under <language>/{EXERCISES}/<slug>/")
    unknown = sorted(set(languages or ()) - set(available))
    if unknown:
        raise SuiteError(
            f"{root} has no exercises for {', '.join(unknown)}; it has {', '.join(available)}"
        )
    tasks = []
    for language_dir in found:
        if languages and language_dir.name not in languages:
            continue
        for exercise in sorted((language_dir / EXERCISES).iterdir()):
            if (exercise / ".meta" / "config.json").is_file():
                tasks.append(exercise_task(exercise, language_dir.name))
    return tasks


def exercise_task(exercise: Path, language: str) -> Task:
    meta = exercise / ".meta" / "config.json"
    try:
        files = json.loads(meta.read_text())["files"]
        solution, tests, examples = files["solution"], files["test"], files["example"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SuiteError(f"{meta}: cannot read files.solution/test/example ({exc})") from None
    repository = {
        str(path.relative_to(exercise)): _read(path)
        for path in sorted(exercise.rglob("*"))
        if path.is_file() and not path.relative_to(exercise).parts[0].startswith((".meta", ".docs"))
    }
    cargo_example = exercise / ".meta" / "Cargo-example.toml"
    if cargo_example.is_file():
        # The reference needs these crates: the task starts with them declared.
        repository["Cargo.toml"] = _read(cargo_example)
    if language == "javascript":
        for test in tests:
            if test in repository:
                repository[test] = JS_SKIPPED_TEST.sub(lambda m: m.group(0)[1:], repository[test])
    scope = [path for path in solution if Path(path).name not in MANIFESTS]
    reference = {}
    for example in examples:
        target = _solution_for(example, scope)
        if target:
            reference[target] = (repository.get(target), _read(exercise / example))
    if not reference:
        raise SuiteError(f"{meta}: no solution file matches the example files {examples}")
    docs = exercise / ".docs"
    text = "\n\n".join(
        _read(docs / name).strip()
        for name in ("introduction.md", "instructions.md", "instructions.append.md")
        if (docs / name).is_file()
    )
    tail = INSTRUCTIONS_TAIL.format(files=", ".join(scope))
    deciding = [test for test in tests if DEFINES_TESTS.search(repository.get(test, ""))]
    return Task(
        task_id=f"{language}/{exercise.name}",
        language=language,
        instructions=f"{text}\n\n{tail}".strip(),
        scope=scope,
        criteria=[f"Every test in `{test}` passes." for test in deciding],
        files=repository,
        reference=reference,
        test_command=TEST_COMMANDS.get(language, ""),
        tests_text="\n".join(repository.get(test, "") for test in tests),
        problem="" if deciding else f"no test in {', '.join(tests)}: nothing decides the task",
    )


def _solution_for(example: str, solution: list[str]) -> str | None:
    """The solution file an example file is the answer for: same extension (the
    example is `.meta/example.py`, `.meta/proof.ci.js`, ...)."""
    suffix = Path(example).suffix
    matching = [path for path in solution if Path(path).suffix == suffix]
    return matching[0] if matching else None


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SuiteError(f"{path}: cannot read it as UTF-8 text ({exc})") from None


SWEBENCH_FIELDS = ("instance_id", "repo", "base_commit", "problem_statement", "test_patch")


def load_swebench(path: Path) -> list[Task]:
    """One task per line: instance_id, repo (a path or git URL), base_commit,
    problem_statement, test_patch, FAIL_TO_PASS, PASS_TO_PASS (lists, or JSON-encoded
    lists as SWE-bench ships them), and optionally patch (the reference), scope (paths
    the Builder may change; default the whole repository) and test_command."""
    tasks = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path} line {number}"
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise SuiteError(f"{where}: not JSON ({exc})") from None
        missing = [name for name in SWEBENCH_FIELDS if not row.get(name)]
        if missing:
            raise SuiteError(f"{where}: missing {', '.join(missing)}")
        fail_to_pass = _test_list(row.get("FAIL_TO_PASS"), f"{where}: FAIL_TO_PASS")
        if not fail_to_pass:
            raise SuiteError(f"{where}: FAIL_TO_PASS is empty; nothing decides the task")
        gold = row.get("patch", "")
        repository = str(row["repo"])
        if "://" not in repository and not repository.startswith("git@"):
            repository = str((path.parent / repository).resolve())
        tasks.append(
            Task(
                task_id=str(row["instance_id"]),
                language=str(row.get("language", "python")),
                instructions=str(row["problem_statement"]),
                scope=list(row.get("scope") or []),
                criteria=[f"`{test}` passes." for test in fail_to_pass],
                test_command=str(row.get("test_command", "")),
                repository=repository,
                base_commit=str(row["base_commit"]),
                test_patch=str(row["test_patch"]),
                gold_patch=gold,
                fail_to_pass=fail_to_pass,
                pass_to_pass=_test_list(row.get("PASS_TO_PASS"), f"{where}: PASS_TO_PASS"),
                tests_text=str(row["test_patch"]) + "\n" + "\n".join(fail_to_pass),
            )
        )
    if not tasks:
        raise SuiteError(f"{path}: no instances")
    return tasks


def _test_list(value: object, where: str) -> list[str]:
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else []
        except ValueError:
            raise SuiteError(f"{where} must be a list of test ids") from None
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise SuiteError(f"{where} must be a list of test ids")
    return value


def patch_paths(patch: str) -> list[str]:
    """The files a unified diff changes, in order."""
    paths = []
    for line in patch.splitlines():
        if line.startswith("+++ ") and not line.startswith("+++ /dev/null"):
            path = line[4:].split("\t")[0].strip()
            path = path[2:] if path.startswith("b/") else path
            if path not in paths:
                paths.append(path)
    return paths
