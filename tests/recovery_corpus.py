"""A labelled corpus of failures for recovery: each case is a one-phase run on the demo
inventory project whose Builder (the fake model server on 127.0.0.1) fails in a known
way, once or more, and then sends a correct change. Run by tests/test_recovery_corpus.py
and bench/recovery.py.

Variants per kind: `once` (one failure, then the fix), `twice` (two different failures
of the kind: the Doctor is asked unless the kind is deterministic or a known fix
matched) and `same` (the same failure twice: an approach flaw, replanned)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from tests.builds import APPROVE, QUANTITY, block, config, drive, phase, start, write_models
from tests.fake_llm import Reply

QUANTITY_TEST = block(
    "tests/test_quantity.py",
    "",
    "from inventory.stock import quantity_of\n\n\n"
    "def test_quantity_of():\n"
    '    assert quantity_of({"bolt": 3}, "bolt") == 3\n'
    '    assert quantity_of({}, "nut") == 0\n',
)


def _stock(body: str) -> str:
    """An edit adding `body` after remove_item."""
    return block(
        "inventory/stock.py",
        "    stock[item] -= quantity\n",
        "    stock[item] -= quantity\n" + body,
    )


def _quantity(returns: str) -> str:
    return _stock(
        f"\n\ndef quantity_of(stock: dict[str, int], item: str) -> int:\n    return {returns}\n"
    )


DOCTOR_HINT = json.dumps(
    {
        "action": "retry_with_fix",
        "confidence": 0.9,
        "reasoning": "the change breaks the module; keep remove_item as it was",
        "hint": "Add quantity_of after remove_item and change nothing else.",
    }
)
REVISION = json.dumps(
    {
        "description": "Add quantity_of(stock, item) returning the quantity on hand (0 if "
        "absent), below remove_item, changing nothing else.",
        "acceptance_criteria": ["quantity_of returns 0 for an unknown item"],
        "approach": "One SEARCH/REPLACE block on inventory/stock.py appending the function.",
    }
)
REJECT = '{"verdict": "reject", "reasons": ["%s"]}'


@dataclass(frozen=True)
class Case:
    name: str
    kind: str
    failures: tuple  # Builder replies that fail, in order
    fix: tuple = (QUANTITY,)
    phase: dict = field(default_factory=dict)
    models: dict = field(default_factory=dict)
    gate_timeout: float | None = None
    token_cap: int | None = None  # a run cap the first attempt runs into
    abandoned: int = 0  # attempts a dead worker left RUNNING before the run starts

    @property
    def variant(self) -> str:
        return self.name.rsplit("-", 1)[-1]


def _three(kind: str, a, b, c, **extra) -> list[Case]:
    """once: a then the fix; twice: a, b then the fix; same: c, c then the fix."""
    return [
        Case(f"{kind}-once", kind, (a,), **extra),
        Case(f"{kind}-twice", kind, (a, b), **extra),
        Case(f"{kind}-same", kind, (c, c), **extra),
    ]


TEST_SCOPE = {"scope": {"paths": ["inventory/", "tests/"]}}
TARGET = {
    **TEST_SCOPE,
    "acceptance_criteria": ["tests/test_quantity.py::test_quantity_of passes"],
}

CASES: list[Case] = [
    *_three(
        "malformed_reply",
        "Done.\n\ninventory/stock.py\n```python\n<<<<<<< SEARCH\n"
        "    stock[item] -= quantity\n```\n",
        "I have made the change you asked for; the function is now there.",
        "inventory/stock.py\n```python\n<<<<<<< SEARCH\nx\n=======\ny\n```\n",
    ),
    *_three(
        "edit_not_applied",
        block("inventory/stock.py", "def no_such_function():\n    pass\n", "def x():\n    pass\n"),
        block("inventory/stock.py", "class Ledger:\n", "class Ledger(dict):\n"),
        block("inventory/stock.py", "    stock[thing] -= amount\n", "    pass\n"),
    ),
    *_three(
        "path_refused",
        block("setup.py", "", "from setuptools import setup\nsetup()\n"),
        block("README.md", "", "# Inventory\n"),
        block("docs/notes.md", "", "notes\n"),
    ),
    *_three(
        "syntax_error",
        _stock("\n\ndef quantity_of(stock, item)\n    return stock.get(item, 0)\n"),
        _stock("\n\ndef quantity_of(stock, item):\n    return (stock.get(item, 0)\n"),
        _stock("\n\ndef quantity_of(stock, item):\nreturn stock.get(item, 0)\n"),
    ),
    *_three(
        "import_error",
        _stock("\n\nimport inventory_barcodes_xyz\n"),
        _stock("\n\nfrom inventory.missing_module import lookup\n"),
        _stock("\n\nfrom inventory.ledger_cache import cached\n"),
    ),
    *_three(
        "test_regression",
        block(
            "inventory/stock.py",
            "    if stock.get(item, 0) < quantity:\n        raise OutOfStock(item)\n",
            "",
        ),
        block(
            "inventory/stock.py", "    stock[item] -= quantity\n", "    stock[item] = quantity\n"
        ),
        block("inventory/stock.py", "    stock[item] -= quantity\n", "    pass\n"),
    ),
    *_three(
        "target_failing",
        QUANTITY_TEST + "\n" + _quantity("0"),
        QUANTITY_TEST + "\n" + _quantity("stock.get(item, 1)"),
        QUANTITY_TEST + "\n" + _quantity("len(stock)"),
        fix=(QUANTITY_TEST + "\n" + QUANTITY,),
        phase=TARGET,
    ),
    *_three(
        "timeout",
        _stock("\n\nimport time\n\ntime.sleep(60)\n"),
        _stock("\n\nwhile True:\n    pass\n"),
        _stock("\n\nimport time as _t\n\n_t.sleep(120)\n"),
        gate_timeout=4,
    ),
    *_three(
        "truncated",
        Reply(QUANTITY[:40], stop="max_tokens"),
        Reply("inventory/stock.py\n```python\n<<<<<<< SEARCH\n", stop="max_tokens"),
        Reply(QUANTITY[:60], stop="max_tokens"),
        models={"builder": {"max_output_tokens": 512, "max_output_tokens_limit": 512}},
    ),
    *_three(
        "provider_error",
        Reply(status=400),
        Reply(status=422),
        Reply(status=404),
    ),
    # The Builder's change is right each time; the Auditor's replies are the failures.
    *_three(
        "auditor_rejected",
        REJECT % "quantity_of lacks a docstring",
        REJECT % "quantity_of should say what it returns for unknown items",
        REJECT % "the change does not log the lookup",
    ),
    # A person denies a change to a protected path.
    *_three(
        "protected_denied",
        block("pyproject.toml", "[project]\n", '[project]\ndescription = "stock"\n'),
        block("Dockerfile", "", "FROM python:3.11\n"),
        block("Dockerfile", "", "FROM python:3.12\n"),
        phase={"scope": {"paths": ["inventory/", "pyproject.toml", "Dockerfile"]}},
    ),
    Case("budget-once", "budget", (), token_cap=50),
    Case("budget-twice", "budget", (), token_cap=200),
    Case("budget-same", "budget", (), token_cap=400),
    Case("worker_lost-once", "worker_lost", (), abandoned=1),
    Case("worker_lost-twice", "worker_lost", (), abandoned=2),
    # Two lost workers, and the third and last attempt passes (a third loss in a row
    # would stop the run: the health budget's repeated_failures).
    Case("worker_lost-same", "worker_lost", (), abandoned=2, phase={"max_attempts": 3}),
]


def recovery_models(path: Path, case: Case) -> Path:
    return write_models(
        path,
        doctor={"enabled": True, "min_failures": 2},
        doctor_models={
            "cheap": "anthropic/claude-doctor-cheap",
            "strong": "anthropic/claude-doctor-strong",
        },
        replan={"enabled": True},
        **case.models,
    )


def run_case(case: Case, fake_llm, repo: Path, settings, tmp_path: Path) -> dict:
    """Drive the case's run to its end (resuming a run stopped by its budget with a
    raised cap, as a person would) and report what recovery did."""
    from governance.services import deny
    from runs import services
    from runs.models import Attempt, Run
    from runs.states import AttemptState, PhaseState, RunState
    from telemetry.models import LlmCall

    settings.AUTOPACK_MODELS = recovery_models(tmp_path / "models.yaml", case)
    if case.gate_timeout:
        settings.AUTOPACK_GATE_TIMEOUT = case.gate_timeout
    if case.kind == "auditor_rejected":
        fake_llm.script("builder", *[QUANTITY] * len(case.failures), *case.fix)
        fake_llm.script("auditor", *case.failures)
    else:
        fake_llm.script("builder", *case.failures, *case.fix)
    fake_llm.script("auditor", *[APPROVE] * 3)
    fake_llm.script("doctor", DOCTOR_HINT, DOCTOR_HINT)
    fake_llm.script("planner", REVISION)
    extra = {"token_cap": case.token_cap} if case.token_cap else {}
    data = config(
        repo, [phase("count", 0, ["inventory/"], **case.phase)], run_id=case.name, **extra
    )
    run = start(data)
    if case.abandoned:
        row = run.phases.get()
        services.transition_run(run, RunState.RUNNING)
        services.transition_phase(row, PhaseState.EXECUTING)
        for number in range(1, case.abandoned + 1):
            Attempt.objects.create(run=run, phase=row, number=number, model="anthropic/x")
    run = drive(run)
    while run.state == RunState.AWAITING_APPROVAL:  # a person says no each time
        request = run.governance_requests.get(state="pending")
        deny(request, None, "not this file: keep to the inventory package")
        run = drive(Run.objects.get(pk=run.pk))
    if run.state == RunState.DONE_FAILED and case.kind == "budget":
        services.resume_run(run, token_cap=1_000_000)
        run = drive(Run.objects.get(pk=run.pk))
    row = run.phases.get()
    attempts = list(row.attempts.order_by("number"))
    failed = [a for a in attempts if a.state != AttemptState.PASSED]
    calls = LlmCall.objects.filter(run=run)
    recovery_calls = calls.filter(role__in=("doctor", "planner")) | calls.filter(attempt__in=failed)
    return {
        "case": case.name,
        "kind": case.kind,
        "recorded": [a.failure_kind for a in failed],
        "recovered": run.state == RunState.DONE_SUCCESS,
        "state": run.state,
        "reason": run.failure_reason,
        "attempts": len(attempts),
        "doctor_calls": calls.filter(role="doctor").count(),
        "planner_calls": calls.filter(role="planner").count(),
        "fixes": list(row.decisions.filter(action="apply_fix").values_list("result", flat=True)),
        "failed": [
            {
                "attempt": a.number,
                "kind": a.failure_kind,
                "fixed": a.decisions.filter(action="apply_fix").exists(),
                "doctor_calls": calls.filter(attempt=a, role="doctor").count(),
            }
            for a in failed
        ],
        "actions": list(row.decisions.values_list("action", flat=True)),
        "recovery_tokens": sum(c.total_tokens or 0 for c in recovery_calls.distinct()),
        "prompts": [c.prompt for c in fake_llm.calls("builder")],
        "cost": str(sum((c.cost_usd or Decimal(0) for c in calls), Decimal(0))),
    }
