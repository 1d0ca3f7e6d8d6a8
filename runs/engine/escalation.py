"""Which model makes the next attempt of a phase, and why.

Each complexity level has a chain of models, cheapest first. A model gets
`threshold(level)` attempts; after that many failures the next model in the chain takes
over, and at the end of a chain the next complexity up (when complexity escalation is
enabled). That is the "progressive" policy; "best_first" starts at the strongest model of
the phase's chain and escalates from there; a list of models replaces the chains.
"""

from __future__ import annotations

from dataclasses import dataclass

from runs.engine.routing import BEST_FIRST, LEVELS, ModelsConfig


@dataclass(frozen=True)
class Rung:
    level: str
    model: str
    attempts: int


@dataclass(frozen=True)
class Choice:
    builder: str
    auditor: str | None
    level: str
    reason: str


def ladder(
    config: ModelsConfig, complexity: str, policy: str | tuple[str, ...] = "progressive"
) -> list[Rung]:
    if isinstance(policy, tuple):
        return [Rung(complexity, model, config.threshold(complexity)) for model in policy]
    levels = LEVELS[LEVELS.index(complexity) :]
    if not config.complexity_escalation.enabled:
        levels = levels[:1]
    rungs = [
        Rung(level, model, config.threshold(level))
        for level in levels
        for model in config.chain("builder", level)
    ]
    if policy == BEST_FIRST:
        strongest = len(config.chain("builder", complexity)) - 1
        return rungs[strongest:]
    return rungs


def _rung_for(rungs: list[Rung], failures: int) -> int:
    remaining = failures
    for index, rung in enumerate(rungs):
        if remaining < rung.attempts:
            return index
        remaining -= rung.attempts
    return len(rungs) - 1  # past the end: stay on the strongest model


def choose(
    config: ModelsConfig,
    complexity: str,
    failures: int,
    policy: str | tuple[str, ...] = "progressive",
) -> Choice:
    """The models for the attempt after `failures` failed attempts of a phase."""
    rungs = ladder(config, complexity, policy)
    index = _rung_for(rungs, failures)
    rung = rungs[index]
    auditor = (
        config.chain("auditor", rung.level)[0]
        if complexity in config.auditor.complexities
        else None
    )
    if failures == 0 and isinstance(policy, tuple):
        reason = f"first attempt: the phase's escalation policy lists {rung.model} first"
    elif failures == 0 and policy == BEST_FIRST:
        reason = (
            f"first attempt: best_first starts at the strongest model of "
            f"builder.{rung.level}, {rung.model}"
        )
    elif failures == 0:
        reason = f"first attempt: builder.{rung.level} chain starts with {rung.model}"
    else:
        previous = rungs[_rung_for(rungs, failures - 1)]
        if previous == rung:
            reason = f"retry on {rung.model} after {failures} failure(s)"
        elif previous.level != rung.level:
            reason = (
                f"{previous.attempts} failure(s) on {previous.model} at the end of the "
                f"builder.{previous.level} chain: escalated to {rung.level} complexity, "
                f"{rung.model}"
            )
        else:
            reason = (
                f"{previous.attempts} failure(s) on {previous.model}: next model in the "
                f"builder.{rung.level} chain, {rung.model}"
            )
    return Choice(builder=rung.model, auditor=auditor, level=rung.level, reason=reason)
