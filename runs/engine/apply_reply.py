"""`autopack apply REPLY_FILE`: a model's reply applied to a repository through the
parser, path policy and matcher a run uses, without a run or a database.

Prints the resulting diff. Exit status 0 when applied (or nothing to change), 1 with the
refusal when the reply cannot be applied (nothing is written then), 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from runs.engine.edits import FORMATS, edit_format
from runs.engine.edits.apply import compute_changes
from runs.engine.edits.diffs import changes_diff
from runs.engine.edits.matching import DEFAULT_FUZZY_THRESHOLD
from runs.engine.outcomes import AttemptFailure
from runs.engine.policy import PathPolicy
from runs.engine.workspace import write_files


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="autopack apply",
        description="Apply a model's reply (SEARCH/REPLACE blocks, a unified diff or whole "
        "files) to a repository the way a run would, and print the diff.",
    )
    parser.add_argument("reply", help="file holding the reply; - reads standard input")
    parser.add_argument("--repo", default=".", help="the repository (default: this folder)")
    parser.add_argument(
        "--format", choices=list(FORMATS), default="search_replace", help="the reply's format"
    )
    parser.add_argument(
        "--scope",
        action="append",
        metavar="PATH",
        help="a file or folder edits may touch (repeatable; default: the whole repository)",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="print the diff without writing anything"
    )
    return parser


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    root = Path(args.repo)
    if not root.is_dir():
        print(f"autopack apply: --repo {args.repo}: no such folder", file=sys.stderr)
        return 2
    try:
        reply = sys.stdin.read() if args.reply == "-" else Path(args.reply).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        print(f"autopack apply: cannot read {args.reply}: {exc}", file=sys.stderr)
        return 2
    policy = PathPolicy(root, tuple(args.scope or ["."]))

    def read(path: str) -> str | None:
        file = root / path
        return file.read_text(encoding="utf-8") if file.is_file() else None

    try:
        edits = [policy.check_edit(edit) for edit in edit_format(args.format).parse(reply)]
        originals = {
            path: read(path) for edit in edits for path in (edit.path, edit.source) if path
        }
        changes = compute_changes(edits, read, DEFAULT_FUZZY_THRESHOLD)
    except AttemptFailure as exc:
        print(exc.feedback, file=sys.stderr)
        return 1
    except UnicodeDecodeError as exc:
        print(f"a file the reply edits is not UTF-8 text: {exc}", file=sys.stderr)
        return 1
    sys.stdout.write(changes_diff(changes, originals))
    if not changes:
        print("The reply changes nothing.", file=sys.stderr)
    elif not args.dry_run:
        write_files(root, changes)
        print(f"Applied to {len(changes)} file(s) in {root.resolve()}", file=sys.stderr)
    return 0
