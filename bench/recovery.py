"""Recovery: the labelled failure corpus (tests/recovery_corpus.py), each case a whole
run against the fake model server on 127.0.0.1, and what recovery made of it.

    .venv/bin/python bench/recovery.py [-k EXPRESSION]

Runs tests/test_recovery_corpus.py through pytest (its database and fixtures) with
AUTOPACK_RECOVERY_REPORT set, then prints per failure kind: cases, failures correctly
classified, cases recovered, Doctor calls, Planner calls, known fixes applied and tokens
spent on recovery (the failed attempts' calls plus the Doctor's and Planner's); then the
overall recovery rate and the Doctor calls that known fixes avoided (failures a known fix
handled, which would otherwise have reached the Doctor).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-k", default="", help="run only the cases pytest -k selects")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="autopack-recovery-") as folder:
        report = Path(folder) / "report.jsonl"
        command = [sys.executable, "-m", "pytest", "-q", "tests/test_recovery_corpus.py"]
        if args.k:
            command += ["-k", args.k]
        env = {**os.environ, "AUTOPACK_RECOVERY_REPORT": str(report)}
        tests = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
        rows = (
            [json.loads(line) for line in report.read_text().splitlines()]
            if report.exists()
            else []
        )
    if not rows:
        print(tests.stdout[-3000:], tests.stderr[-3000:])
        return 1
    by_kind: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        by_kind[row["kind"]].append(row)
    print(
        f"{'kind':20} {'cases':>6} {'classified':>11} {'recovered':>10} {'doctor':>7} "
        f"{'planner':>8} {'fixes':>6} {'tokens':>8}"
    )
    totals: dict[str, int] = defaultdict(int)
    for kind in sorted(by_kind):
        cases = by_kind[kind]
        f = {
            "cases": len(cases),
            "failures": sum(len(c["recorded"]) for c in cases),
            "classified": sum(r == kind for c in cases for r in c["recorded"]),
            "recovered": sum(c["recovered"] for c in cases),
            "doctor": sum(c["doctor_calls"] for c in cases),
            "planner": sum(c["planner_calls"] for c in cases),
            "fixes": sum(len(c["fixes"]) for c in cases),
            "tokens": sum(c["recovery_tokens"] for c in cases),
        }
        for key, value in f.items():
            totals[key] += value
        classified = f"{f['classified']} of {f['failures']}"
        print(
            f"{kind:20} {f['cases']:>6} {classified:>11} {f['recovered']:>10} "
            f"{f['doctor']:>7} {f['planner']:>8} {f['fixes']:>6} {f['tokens']:>8}"
        )
    rate = totals["recovered"] / totals["cases"]
    print(
        f"\nrecovery: cases={totals['cases']} recovered={totals['recovered']} ({rate:.0%}) "
        f"classified={totals['classified']}/{totals['failures']} doctor_calls={totals['doctor']} "
        f"planner_calls={totals['planner']} doctor_calls_avoided_by_known_fixes={totals['fixes']} "
        f"recovery_tokens={totals['tokens']}"
    )
    if tests.returncode:
        print(f"\n(the corpus tests failed: pytest exit {tests.returncode})")
        print(tests.stdout[-2000:])
    return tests.returncode


if __name__ == "__main__":
    sys.exit(main())
