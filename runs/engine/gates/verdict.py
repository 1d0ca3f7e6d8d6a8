"""How one test run compares with the run before the change: which tests broke, which
the phase had to make pass, and the words the Builder and the dashboard get."""

from __future__ import annotations

import difflib

from runs.engine.gates.results import FAILED, PASSED, TestResults
from runs.engine.gates.selection import base_name

PER_TEST_CHARS = 1500
SHOWN = 5  # test ids named in a one-line summary


def describe_counts(results: TestResults) -> str:
    if results.problem:
        return f"could not run: {results.problem}"
    if not results.per_test:
        return f"exit code {results.exit_code} (results not readable per test)"
    counts = results.counts()
    text = f"{counts['ran']} ran: {counts['passed']} passed, {counts['failed']} failed"
    if counts["skipped"]:
        text += f", {counts['skipped']} skipped"
    if counts["errors"]:
        text += f", {counts['errors']} could not load"
    return text


def _did_you_mean(token: str, results: TestResults) -> str:
    names = {*results.tests, *(base_name(t) for t in results.tests)}
    close = difflib.get_close_matches(token, names, n=3, cutoff=0.75)
    return f" Tests with a similar name: {', '.join(close)}." if close else ""


class Verdict:
    """The comparison of one test run with its reference, in words and figures."""

    def __init__(
        self, results: TestResults, reference: TestResults | None, own_command: bool
    ) -> None:
        self.results = results
        self.reference = reference
        self.own_command = own_command
        self.required = None
        before = reference.ids(PASSED) if reference is not None else set()
        self.broken = sorted(t for t in before if self._outcome(t) != PASSED)
        failed_before = reference.ids(FAILED) if reference is not None else set()
        self.still_failing = sorted(results.ids(FAILED) & failed_before)
        known_errors = set(reference.errors) if reference is not None else set()
        self.new_errors = sorted(set(results.errors) - known_errors)
        # The phase's own command is about its tests: none may disappear, failing or not.
        self.vanished = sorted(t for t in failed_before if own_command and t not in results.tests)

    def _outcome(self, test_id: str) -> str:
        case = self.results.tests.get(test_id)
        return case.outcome if case else "missing"

    def required_status(self) -> dict[str, str]:
        if self.required is None:
            return {}
        return {test_id: self._outcome(test_id) for test_id in sorted(self.required.reasons)}

    def problems(self) -> list[str]:
        results = self.results
        if results.problem:
            return [
                f"`{results.command}` {results.problem}. Output:\n"
                f"{results.output[-PER_TEST_CHARS * 2 :]}"
            ]
        if not results.per_test and self.reference is not None and self.reference.per_test:
            return [
                f"`{results.command}` wrote no per-test report (exit {results.exit_code}), as "
                "it did before your change: the tests did not really run. Output:\n"
                f"{results.output[-PER_TEST_CHARS * 2 :]}"
            ]
        if not results.per_test:
            if results.exit_code == 0:
                return []
            return [
                f"`{results.command}` exited with {results.exit_code} (its results could not be "
                f"read test by test, so it must succeed). Output:\n"
                f"{results.output[-PER_TEST_CHARS * 2 :]}"
            ]
        problems = []
        reference_ran = self.reference.ran if self.reference is not None else 0
        if results.ran == 0 and not results.errors and reference_ran:
            problems.append(
                f"`{results.command}` ran no tests (it ran {reference_ran} before your change)."
            )
        for name in self.new_errors:
            problems.append(f"{name} could not be loaded:\n{results.errors[name][:PER_TEST_CHARS]}")
        for test_id in self.broken:
            problems.append(self._test_problem(test_id, "passed before your change"))
        for test_id in self.vanished:
            problems.append(self._test_problem(test_id, "it is in the phase's own test command"))
        for test_id, outcome in self.required_status().items():
            if outcome != PASSED and test_id not in self.broken:
                reason = self.required.reasons[test_id]
                problems.append(self._test_problem(test_id, f"must pass: {reason}"))
        for token in self.required.missing if self.required else []:
            problems.append(
                f"No test matching {token} ran; the acceptance criteria name it."
                + _did_you_mean(token, results)
            )
        reference = self.reference
        # Without results of the same shape to compare with (a command whose earlier run
        # could not be read test by test), only success proves nothing broke.
        comparable = reference is not None and reference.format == results.format
        succeeded_before = reference is not None and reference.exit_code == 0
        must_succeed = self.own_command or succeeded_before or not comparable
        if not problems and results.exit_code != 0 and must_succeed:
            # Every test passed, yet the command failed: a coverage threshold, a type check
            # or a linter chained after the tests.
            failing = sorted(results.ids(FAILED))
            why = (
                "is the phase's own"
                if self.own_command
                else "succeeded before your change"
                if succeeded_before
                else "could not be compared test by test with its run before your change"
            )
            problems.append(
                f"`{results.command}` must succeed (it {why}); it exited with "
                f"{results.exit_code}. Output:\n{results.output[-PER_TEST_CHARS:]}"
                + "".join("\n\n" + self._test_problem(t, "fails") for t in failing[:SHOWN])
            )
        return problems

    def _test_problem(self, test_id: str, why: str) -> str:
        case = self.results.tests.get(test_id)
        if case is None:
            return f"{test_id} did not run ({why})."
        if case.outcome != FAILED:
            return f"{test_id} was {case.outcome} ({why})."
        return f"FAILED {test_id} ({why}):\n{case.message[:PER_TEST_CHARS]}"

    def details(self) -> dict:
        results = self.results
        reference = self.reference
        return {
            "command": results.command,
            "format": results.format,
            "exit_code": results.exit_code,
            "problem": results.problem,
            **results.counts(),
            "baseline": reference.counts() if reference is not None else None,
            "newly_failing": self.broken,
            "vanished": self.vanished,
            "still_failing": self.still_failing,
            "new_errors": self.new_errors,
            "required": self.required_status(),
            "missing": list(self.required.missing) if self.required else [],
        }

    def summary(self) -> str:
        text = describe_counts(self.results)
        if self.reference is not None and self.results.per_test:
            text += f" (before: {self.reference.ran} ran, {len(self.reference.ids(FAILED))} failed)"
        required = self.required_status()
        if required:
            text += f"; {len(required)} required test(s) pass"
        if self.still_failing:
            text += f"; {len(self.still_failing)} failing as before, not this phase's tests"
        return text

    def failure_summary(self) -> str:
        results = self.results
        if results.problem:
            return f"`{results.command}` {results.problem}"
        if not results.per_test:
            return f"`{results.command}` exited with {results.exit_code}"
        if self.broken:
            return (
                f"{len(self.broken)} test(s) that passed before now fail: "
                f"{', '.join(self.broken[:3])}"
            )
        if self.vanished:
            gone = ", ".join(self.vanished[:3])
            return f"{len(self.vanished)} test(s) of the phase's command are gone: {gone}"
        if self.new_errors:
            shown = ", ".join(self.new_errors[:3])
            return f"{len(self.new_errors)} test file(s) do not load: {shown}"
        failing = [t for t, outcome in self.required_status().items() if outcome != PASSED]
        if failing:
            return f"{len(failing)} required test(s) do not pass: {', '.join(failing[:3])}"
        if self.required and self.required.missing:
            return f"required tests did not run: {', '.join(self.required.missing[:3])}"
        if results.ran == 0:
            return f"`{results.command}` ran no tests"
        return f"`{results.command}` exited with {results.exit_code}"
