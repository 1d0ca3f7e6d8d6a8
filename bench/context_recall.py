"""How often the Builder is shown the files a change really needed.

    bench/context_recall.py DATASET.jsonl [--budget-tokens N] [--limit N] [--cache DIR]

Each line of the dataset is one real change: `repo` (a git directory, relative to the
dataset file; when it is missing and `<name>.bundle` lies beside it, the bundle is cloned
into a temporary directory), `commit` (the state the Builder starts from), `scope` (the
phase's scope paths), `task` (the phase's task text) and `gold_files` (the files the
change modified).

For every instance the repository is checked out at `commit` and the engine's own context
selection (runs.engine.context.select, with the on-disk tag cache) chooses the files for
a phase with that scope and task, within the budget. Beside it, in the same run and with
the same token estimate and packing: path order (what Autopack did before), a plain BM25
ranking of the task text, and the ceiling (the gold files first, smallest first: what any
ranking could at best show whole).
Autopack's semantic signal is what the memory store gives a run: the similarity of each
file's code, by symbol, to the task, with the built-in embedding model (computed here in
process, with the same chunks and model; `--no-semantic` leaves it out).

Figures per ranking:
- recall: gold files shown whole within the budget / all gold files;
- all: instances with every gold file shown whole;
- Acc@k: instances with every gold file in the ranking's first k files.
Times per instance: cold (empty tag cache) and warm (the same selection again, as a
second attempt on an unchanged repository does).
No model is called. The last line is
`context recall: recall=R% all=A% acc5=K% instances=N budget=B` for Autopack's selection.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from runs.engine import context, lexical, repomap  # noqa: E402
from runs.engine.spec import PhaseSpec, title  # noqa: E402


@dataclass
class Tally:
    name: str
    gold: int = 0
    shown: int = 0
    complete: int = 0
    top: dict[int, int] = field(default_factory=lambda: {1: 0, 3: 0, 5: 0})

    def add(self, gold: list[str], ranking: list[str], whole: set[str]) -> None:
        self.gold += len(gold)
        self.shown += sum(path in whole for path in gold)
        self.complete += all(path in whole for path in gold)
        for k in self.top:
            self.top[k] += set(gold) <= set(ranking[:k])

    def row(self, instances: int) -> str:
        pct = lambda n, d: f"{100 * n / d:5.1f}%" if d else "   - "  # noqa: E731
        acc = "  ".join(pct(self.top[k], instances) for k in (1, 3, 5))
        return (
            f"{self.name:<22} {pct(self.shown, self.gold)} {pct(self.complete, instances)}  {acc}"
        )


def git(directory: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(directory), *args], check=True, capture_output=True, text=True
    ).stdout


def repository(dataset: Path, name: str, scratch: Path) -> Path:
    """A non-bare clone of the instance's repository, to check commits out in."""
    source = (dataset.parent / name).resolve()
    if not source.exists():
        bundle = source.with_suffix(".bundle")
        if not bundle.exists():
            sys.exit(f"{dataset}: repository {source} does not exist (nor {bundle.name})")
        print(f"cloning {bundle} (the dataset's {name} does not exist)", file=sys.stderr)
        source = bundle
    clone = scratch / (source.stem + "-work")
    if not clone.exists():
        subprocess.run(
            ["git", "clone", "--quiet", "--no-checkout", str(source), str(clone)], check=True
        )
    return clone


def checkout(clone: Path, commit: str) -> None:
    git(clone, "checkout", "--quiet", "--force", "--detach", commit)
    git(clone, "clean", "-fdxq")


def spec_for(instance: dict) -> PhaseSpec:
    scope = instance["scope"]
    return PhaseSpec(
        run_id="bench",
        phase_id="context",
        goal="",
        task_name=title(instance["task"]),
        description=instance["task"],
        category="feature",
        complexity="medium",
        scope_paths=tuple([scope] if isinstance(scope, str) else scope),
    )


class Similar:
    """Each file's best chunk similarity to the task: memory.services.code_scores with
    the same chunks and model, without the database. Like the memory store, a chunk
    already embedded is not embedded again."""

    def __init__(self) -> None:
        from memory.embeddings import LocalEmbedder

        self.model = LocalEmbedder()
        self.vectors: dict[str, list[float]] = {}

    def __call__(self, query: str, pieces: dict[str, list[context.Chunk]]) -> dict[str, float]:
        flat = [piece for found in pieces.values() for piece in found]
        new = list(dict.fromkeys(p[3] for p in flat if p[3] not in self.vectors))
        self.vectors.update(zip(new, self.model.embed(new) if new else [], strict=True))
        (task,) = self.model.embed([query])
        best: dict[str, float] = {}
        for path, _, _, text in flat:
            similarity = sum(a * b for a, b in zip(self.vectors[text], task, strict=True))
            best[path] = max(best.get(path, -1.0), similarity)
        return best


def packed(order: list[str], texts: dict[str, str], budget: int) -> set[str]:
    """Whole files in this order while they fit: the baselines' packing."""
    shown, remaining = set(), budget
    for path in order:
        size = context.estimate_tokens(texts[path])
        if size <= remaining:
            shown.add(path)
            remaining -= size
    return shown


def baselines(root: Path, spec: PhaseSpec, gold: list[str]) -> dict[str, tuple[list[str], dict]]:
    chosen, _ = context.candidates(root, spec)
    texts = {}
    for path, _ in chosen:
        text = context.readable(root, path)
        if text is not None:
            texts[path] = text
    paths = sorted(texts)
    documents = {p: lexical.document(p, texts[p]) for p in paths}
    scores = lexical.bm25(lexical.terms(spec.description), documents)
    bm25 = sorted(paths, key=lambda p: (-scores[p], p))
    sizes = {p: context.estimate_tokens(texts[p]) for p in paths}
    ceiling = sorted(paths, key=lambda p: (p not in gold, sizes[p], p))
    return {"path order": (paths, texts), "BM25": (bm25, texts), "ceiling": (ceiling, texts)}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dataset", type=Path)
    parser.add_argument("--budget-tokens", type=int, default=16_000)
    parser.add_argument("--limit", type=int, default=0, help="only the first N instances")
    parser.add_argument("--cache", type=Path, help="the tag cache (default: a fresh one)")
    parser.add_argument("--no-semantic", action="store_true", help="without memory's signal")
    args = parser.parse_args(argv)
    instances = [json.loads(line) for line in args.dataset.read_text().splitlines() if line]
    if args.limit:
        instances = instances[: args.limit]
    budget = args.budget_tokens
    tallies = {name: Tally(name) for name in ("Autopack", "path order", "BM25", "ceiling")}
    cold = warm = 0.0
    similar = None if args.no_semantic else Similar()
    with tempfile.TemporaryDirectory(prefix="context-recall-") as scratch:
        cache = args.cache or Path(scratch) / "tags"
        for number, instance in enumerate(instances, 1):
            clone = repository(args.dataset, instance["repo"], Path(scratch))
            checkout(clone, instance["commit"])
            spec, gold = spec_for(instance), instance["gold_files"]
            started = time.perf_counter()
            index = repomap.TagIndex(cache)
            chosen = context.select(clone, spec, budget, index=index, similar=similar)
            cold += time.perf_counter() - started
            started = time.perf_counter()
            again = context.select(
                clone, spec, budget, index=repomap.TagIndex(cache), similar=similar
            )
            warm += time.perf_counter() - started
            assert again.included == chosen.included
            tallies["Autopack"].add(gold, chosen.ranking, set(chosen.included))
            for name, (order, texts) in baselines(clone, spec, gold).items():
                tallies[name].add(gold, order, packed(order, texts, budget))
            if number % 10 == 0:
                print(f"  {number}/{len(instances)} instances", file=sys.stderr)
    count = len(instances)
    print(f"{args.dataset.name}: {count} instances, budget {budget} tokens, no model calls")
    print(f"{'ranking':<22} {'recall':>6} {'all':>6}  {'Acc@1':>6} {'Acc@3':>6} {'Acc@5':>6}")
    for tally in tallies.values():
        print(tally.row(count))
    print(
        f"time per instance: cold {1000 * cold / max(count, 1):.0f} ms, "
        f"warm {1000 * warm / max(count, 1):.0f} ms"
    )
    ours = tallies["Autopack"]
    figures = {
        "recall": 100 * ours.shown / max(ours.gold, 1),
        "all": 100 * ours.complete / max(count, 1),
        "acc5": 100 * ours.top[5] / max(count, 1),
        "instances": count,
        "budget": budget,
        "tallies": tallies,
    }
    print(
        f"context recall: recall={figures['recall']:.0f}% all={figures['all']:.0f}% "
        f"acc5={figures['acc5']:.0f}% instances={count} budget={budget}"
    )
    return figures


if __name__ == "__main__":
    main()
