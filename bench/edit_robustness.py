"""Edit application on real patches and the slips models make, through the engine.

    .venv/bin/python bench/edit_robustness.py [--repo PATH] [--commits 40] [--seed 1]
        [--format search_replace|unified_diff|both] [--only SHA ...] [--show 5] [--dump DIR]

Takes commits of a real repository (default: flask's history) that change one to three
.py files, writes each change as the Builder would (SEARCH/REPLACE blocks, a unified
diff), makes the slips of bench/edit_variants.py, and applies every variant to the
parent commit through the engine's real attempt code (tests/attempts.py). An applied
variant is correct when every file has the commit's bytes and nothing else changed on
disk, wrong otherwise; any other attempt outcome is a refusal, and an attempt that
raised instead of returning an outcome is counted as crashed. Prints the counts per slip
and format, then the first wrong or crashed case of each slip (--show) with a diff of
intended and obtained bytes; --dump writes every such case's reply to replay it, --only
reruns chosen commits. Exits 1 when a variant came out wrong or an attempt crashed.

Target: wrong = 0 for every slip, and correct >= 95% of the cases whose intended result
is determined (all but the ambiguous one-line SEARCH, where only a refusal or the
intended bytes are acceptable).
"""

from __future__ import annotations

import argparse
import difflib
import random
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.edit_variants import (  # noqa: E402
    SLIPS,
    FileChange,
    Variant,
    apply_exactly,
    parse_file_diff,
    search_replace_reply,
    unified_diff_reply,
    variants,
)
from runs.engine.outcomes import Outcome  # noqa: E402
from runs.engine.workspace import GitWorkspace  # noqa: E402
from tests.attempts import QuietRecorder, scripted_attempt  # noqa: E402

# The flask history shipped beside the repository (../shared/context/).
DEFAULT_REPO = Path(__file__).resolve().parents[2] / "shared" / "context" / "flask.bundle"
FORMATS = ("search_replace", "unified_diff")
CONTEXTS = (3, 5, 8, 12)  # -U values tried until every SEARCH is unique in its file
MAX_CHANGED_LINES = 60  # per modified file: "modest" diffs
MAX_HUNKS = 6
MAX_FILE_LINES = 4000
MAX_NEW_FILE_LINES = 300
# As `git diff` prints by default, whatever the user's configuration says.
DIFF_OPTIONS = ("--no-color", "--no-ext-diff", "--no-renames", "--src-prefix=a/", "--dst-prefix=b/")


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, encoding="utf-8", errors="replace"
    ).stdout


def show(cwd: Path, commit: str, path: str) -> str | None:
    """A file's text at a commit; None for a file the bench does not model (not UTF-8,
    carriage returns, no final newline)."""
    data = subprocess.run(
        ["git", "show", f"{commit}:{path}"], cwd=cwd, check=True, capture_output=True
    ).stdout
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return None if "\r" in text or (text and not text.endswith("\n")) else text


@dataclass(frozen=True)
class Commit:
    sha: str
    parent: str
    subject: str
    files: tuple[FileChange, ...]


def candidates(work: Path, only: list[str]) -> list[tuple[str, list[tuple[str, str]]]]:
    """Non-merge commits changing 1-3 .py files (added, modified or deleted): those named
    in `only`, or all in the history."""
    walk = ["--no-walk", *only] if only else []
    log = git(work, "log", "--no-merges", "--format=C %H", "--name-status", "--no-renames", *walk)
    found: list[tuple[str, list[tuple[str, str]]]] = []
    for line in log.splitlines():
        if line.startswith("C "):
            found.append((line[2:], []))
        elif line.endswith(".py") and "\t" in line:
            status, path = line.split("\t", 1)
            found[-1][1].append((status, path))
    return [(sha, files) for sha, files in found if 1 <= len(files) <= 3]


def load_change(work: Path, sha: str, parent: str, status: str, path: str) -> FileChange | None:
    if status not in ("A", "M", "D"):
        return None
    before = show(work, parent, path) if status != "A" else None
    after = show(work, sha, path) if status != "D" else None
    if (status != "A" and before is None) or (status != "D" and after is None):
        return None
    for context in CONTEXTS:
        diff = git(work, "diff", f"-U{context}", *DIFF_OPTIONS, parent, sha, "--", path)
        try:
            change = parse_file_diff(path, diff, before, after)
        except ValueError:
            return None
        if status != "M" or apply_exactly(before, change.hunks) == after:
            return change
    return None


def modest(change: FileChange) -> bool:
    if change.status != "M":
        text = change.after if change.status == "A" else change.before
        return text is not None and text.count("\n") <= MAX_NEW_FILE_LINES
    changed = sum(tag != " " for hunk in change.hunks for tag, _ in hunk.lines)
    return (
        0 < changed <= MAX_CHANGED_LINES
        and len(change.hunks) <= MAX_HUNKS
        and (change.before or "").count("\n") <= MAX_FILE_LINES
    )


def load_commit(work: Path, sha: str, files: list[tuple[str, str]]) -> Commit | None:
    parents = git(work, "log", "-1", "--format=%P", sha).split()
    if len(parents) != 1:
        return None
    changes = []
    for status, path in files:
        change = load_change(work, sha, parents[0], status, path)
        if change is None or not modest(change):
            return None
        changes.append(change)
    subject = git(work, "log", "-1", "--format=%s", sha).strip()
    return Commit(sha, parents[0], subject, tuple(changes))


def choose_commits(work: Path, count: int, seed: int, only: list[str]) -> list[Commit]:
    """`count` commits at random: one in sixteen deleting a file, as many creating one,
    when the history has them, and the rest editing files. The commits named in `only`
    instead, when given, those the bench can use."""
    pool = candidates(work, only)
    if only:
        return [c for sha, files in pool if (c := load_commit(work, sha, files))]
    random.Random(seed).shuffle(pool)
    deleting = [c for c in pool if any(status == "D" for status, _ in c[1])]
    creating = [c for c in pool if c not in deleting and any(s == "A" for s, _ in c[1])]
    editing = [c for c in pool if c not in deleting and c not in creating]
    share = max(1, count // 16) if count >= 4 else 0
    chosen: list[Commit] = []
    for group, quota in ((deleting, share), (creating, share), (editing, count)):
        taken = 0
        for sha, files in group:
            if taken >= quota or len(chosen) >= count:
                break
            if commit := load_commit(work, sha, files):
                chosen.append(commit)
                taken += 1
    return chosen


@dataclass
class Case:
    fmt: str
    variant: Variant
    commit: Commit
    verdict: str
    detail: str = ""  # the refusal, the crash, or how the change was written
    reply: str = ""
    obtained: dict[str, bytes | None] = field(default_factory=dict)


def reset(work: Path, commit: str) -> None:
    git(work, "reset", "-q", "--hard", commit)
    git(work, "clean", "-fdxq")


def read_back(work: Path, commit: Commit) -> dict[str, bytes | None]:
    files = {}
    for change in commit.files:
        file = work / change.path
        files[change.path] = file.read_bytes() if file.is_file() else None
    return files


def changed_on_disk(work: Path, parent: str) -> list[str]:
    """Every path whose file differs from the parent commit, committed or not."""
    tracked = git(work, "diff", "--name-only", "-z", "--no-renames", parent)
    untracked = git(work, "ls-files", "-z", "--others", "--exclude-standard")
    return sorted(filter(None, (tracked + untracked).split("\0")))


def intended(commit: Commit) -> dict[str, bytes | None]:
    return {c.path: None if c.after is None else c.after.encode() for c in commit.files}


def attempt(workspace: GitWorkspace, commit: Commit, variant: Variant, fmt: str) -> Case:
    """One variant applied to the parent commit; the worktree is back there afterwards."""
    render = search_replace_reply if fmt == "search_replace" else unified_diff_reply
    case = Case(fmt, variant, commit, "refused", reply=render(variant))
    scope = tuple(change.path for change in commit.files)
    recorder = QuietRecorder()
    try:
        result = scripted_attempt(workspace, case.reply, [], scope, fmt=fmt, recorder=recorder)
    except Exception as exc:  # a crash is a finding to count and show, not a reason to stop
        touched = changed_on_disk(workspace.root, commit.parent)
        case.verdict = "crashed"
        case.detail = f"{crash_summary(exc)}\nfiles touched: {touched}"
        case.obtained = read_back(workspace.root, commit)
    else:
        if result.outcome != Outcome.PASSED:
            case.detail = f"{result.outcome}: {result.message}"
        else:
            case.obtained = read_back(workspace.root, commit)
            touched = changed_on_disk(workspace.root, commit.parent)
            right = case.obtained == intended(commit) and set(touched) <= set(scope)
            case.verdict = "correct" if right else "wrong"
            methods = [e.get("method", "?") for k, e in recorder.events if k == "apply_result"]
            case.detail = f"written by {', '.join(methods)}; files touched: {touched}"
    finally:
        reset(workspace.root, commit.parent)
    return case


def crash_summary(exc: Exception) -> str:
    """The exception and the innermost frame of Autopack's own code that raised it."""
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in frames if "/site-packages/" not in f.filename] or frames
    where = f"{ours[-1].filename}:{ours[-1].lineno} in {ours[-1].name}" if ours else "?"
    return f"{type(exc).__name__} at {where}: {str(exc).strip()}"


def run(work: Path, commits: list[Commit], formats: list[str], seed: int) -> list[Case]:
    workspace = GitWorkspace(work)
    cases: list[Case] = []
    started = time.monotonic()
    for n, commit in enumerate(commits, 1):
        reset(work, commit.parent)
        before = len(cases)
        for fmt in formats:
            for variant in variants(commit.files, fmt, f"{seed}:{commit.sha}"):
                cases.append(attempt(workspace, commit, variant, fmt))
        bad = sum(case.verdict in ("wrong", "crashed") for case in cases[before:])
        print(
            f"[{n}/{len(commits)}] {commit.sha[:10]} {commit.subject[:50]!r}: "
            f"{len(cases) - before} cases, {bad} wrong or crashed "
            f"({time.monotonic() - started:.0f}s)",
            file=sys.stderr,
        )
    return cases


def table(cases: list[Case], fmt: str) -> list[str]:
    """One row per slip of the format, then the total; correct% counts the cases whose
    intended result is determined."""
    mine = [case for case in cases if case.fmt == fmt]
    rows = [slip for slip, formats in SLIPS.items() if fmt in formats]
    lines = [
        fmt,
        f"  {'slip':<30}{'cases':>7}{'correct':>9}{'wrong':>7}{'refused':>9}{'crashed':>9}"
        f"{'correct%':>10}",
    ]
    for slip in [*rows, "total"]:
        chosen = [case for case in mine if slip in ("total", case.variant.slip)]
        tally = Counter(case.verdict for case in chosen)
        determined = [case for case in chosen if case.variant.determined]
        correct = sum(case.verdict == "correct" for case in determined)
        rate = f"{100 * correct / len(determined):.1f}" if determined else "-"
        lines.append(
            f"  {slip:<30}{len(chosen):>7}{tally['correct']:>9}{tally['wrong']:>7}"
            f"{tally['refused']:>9}{tally['crashed']:>9}{rate:>10}"
        )
    return lines


def worst_first(cases: list[Case]) -> list[Case]:
    """Wrong and crashed cases, the first of each format and slip before the others."""
    bad = [case for case in cases if case.verdict in ("wrong", "crashed")]
    firsts: dict[tuple[str, str], Case] = {}
    for case in bad:
        firsts.setdefault((case.fmt, case.variant.slip), case)
    lead = {id(case) for case in firsts.values()}
    return list(firsts.values()) + [case for case in bad if id(case) not in lead]


def _lines(data: bytes | str | None) -> list[str]:
    if isinstance(data, bytes):
        data = data.decode("utf-8", "replace")
    return (data or "").splitlines(keepends=True)


def describe(case: Case, context: int = 2, limit: int = 40) -> str:
    """What went wrong in a case, with a diff between intended and obtained bytes."""
    commit = case.commit
    out = [
        f"{case.verdict.upper()}: {case.fmt} / {case.variant.slip} / {commit.sha[:12]} "
        f"{commit.subject[:60]!r}",
        f"  {case.detail.strip()}".replace("\n", "\n  "),
    ]
    for path, want in intended(commit).items():
        got = case.obtained.get(path)
        if got == want:
            continue
        if got is None or want is None:
            state = "absent" if got is None else f"{len(got)} bytes"
            out.append(f"  {path}: {state}, intended {'deleted' if want is None else 'there'}")
            continue
        out.append(f"  {path}: intended (-) vs obtained (+)")
        diff = list(
            difflib.unified_diff(_lines(want), _lines(got), "intended", "obtained", n=context)
        )
        out += [f"    {line.rstrip(chr(10))!r}"[:120] for line in diff[2 : 2 + limit]]
        if len(diff) > limit + 2:
            out.append(f"    ... {len(diff) - limit - 2} more diff lines")
    return "\n".join(out)


def dump(cases: list[Case], folder: Path) -> None:
    """The reply and the description of every wrong or crashed case, to replay by hand."""
    folder.mkdir(parents=True, exist_ok=True)
    for n, case in enumerate(cases, 1):
        slug = "".join(c if c.isalnum() else "-" for c in case.variant.slip)
        stem = folder / f"{n:03d}-{case.fmt}-{slug}-{case.commit.sha[:10]}"
        stem.with_suffix(".reply.md").write_text(case.reply)
        stem.with_suffix(".txt").write_text(
            describe(case, context=3, limit=10_000) + f"\nparent: {case.commit.parent}\n"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, default=DEFAULT_REPO, help="git repository or bundle")
    parser.add_argument("--commits", type=int, default=40)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--only", nargs="+", default=[], metavar="SHA", help="these commits")
    parser.add_argument("--format", choices=[*FORMATS, "both"], default="both")
    parser.add_argument("--show", type=int, default=5, help="wrong or crashed cases to print")
    parser.add_argument("--dump", type=Path, help="write every wrong or crashed case here")
    args = parser.parse_args()
    if not args.repo.exists():
        parser.error(f"--repo {args.repo} does not exist; pass a git repository or bundle")
    formats = list(FORMATS) if args.format == "both" else [args.format]
    started = time.monotonic()
    root = Path(tempfile.mkdtemp(prefix="autopack-edit-robustness-"))
    try:
        work = root / "work"
        git(root, "clone", "-q", "--no-checkout", str(args.repo.resolve()), str(work))
        commits = choose_commits(work, args.commits, args.seed, args.only)
        print(f"{len(commits)} commits from {args.repo}", file=sys.stderr)
        cases = run(work, commits, formats, args.seed)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    for fmt in formats:
        print("\n".join(table(cases, fmt)) + "\n")
    bad = worst_first(cases)
    for case in bad[: args.show]:
        print(describe(case) + "\n")
    if args.dump and bad:
        dump(bad, args.dump)
        print(f"{len(bad)} wrong or crashed cases written to {args.dump}")
    print(
        f"{len(cases)} cases from {len(commits)} commits in {time.monotonic() - started:.0f}s; "
        f"{len(bad)} wrong or crashed"
    )
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
