"""Context selection on a large scope, cold and warm.

    bench/context_cache.py [--files 1500] [--budget-tokens 16000]

Builds a git repository of N real Python files (flask's source, copied under new names,
each with its own first line so every file has its own content hash), then times the
engine's context selection for one task three ways: cold (empty tag cache), warm in a
new process's state (a new TagIndex over the same cache directory and an empty in-process
word cache: a second run on an unchanged repository) and warm in the same process (a
second attempt). The target: the warm rebuild of a 1,500-file scope under 2 seconds.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from runs.engine import context, lexical, repomap  # noqa: E402
from runs.engine.spec import PhaseSpec  # noqa: E402

BUNDLE = Path(__file__).resolve().parents[2] / "shared" / "context" / "flask.bundle"


def build(root: Path, count: int) -> None:
    source = root.parent / "flask-source"
    subprocess.run(["git", "clone", "-q", str(BUNDLE), str(source)], check=True)
    texts = [p.read_text() for p in sorted((source / "src" / "flask").rglob("*.py"))]
    package = root / "pkg"
    for number in range(count):
        folder = package / f"part_{number // 100:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        text = texts[number % len(texts)]
        (folder / f"module_{number:04d}.py").write_text(f"# copy {number}\n{text}")
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=root, check=True)
    subprocess.run(["git", "add", "-A"], cwd=root, check=True)


def timed(root: Path, spec: PhaseSpec, budget: int, index: repomap.TagIndex) -> float:
    started = time.perf_counter()
    context.select(root, spec, budget, index=index)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=1500)
    parser.add_argument("--budget-tokens", type=int, default=16_000)
    args = parser.parse_args()
    if not BUNDLE.exists():
        sys.exit(f"{BUNDLE} is missing")
    with tempfile.TemporaryDirectory(prefix="context-cache-") as scratch:
        root = Path(scratch) / "repo"
        root.mkdir()
        build(root, args.files)
        spec = PhaseSpec(
            run_id="bench",
            phase_id="cache",
            goal="",
            task_name="Register blueprints with a unique name",
            description="Register blueprints with a unique name; see Blueprint.register",
            category="feature",
            complexity="medium",
            scope_paths=("pkg/",),
        )
        cache = Path(scratch) / "tags"
        cold = timed(root, spec, args.budget_tokens, repomap.TagIndex(cache))
        lexical._cache.clear()
        lexical.stem.cache_clear()
        fresh = repomap.TagIndex(cache)
        warm = timed(root, spec, args.budget_tokens, fresh)
        again = timed(root, spec, args.budget_tokens, fresh)
    print(f"{args.files} files, budget {args.budget_tokens} tokens")
    print(f"cold (empty tag cache):            {cold:6.2f} s")
    print(f"warm (new process, cache on disk): {warm:6.2f} s  ({warm / cold:.2f} of cold)")
    print(f"warm (same process, 2nd attempt):  {again:6.2f} s  ({again / cold:.2f} of cold)")
    print(f"parsed on the warm run: {fresh.misses} files (cache hits: {fresh.hits})")
    print(f"context cache: files={args.files} cold={cold:.2f}s warm={warm:.2f}s")


if __name__ == "__main__":
    main()
