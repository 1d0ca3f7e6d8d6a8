"""Plans drafted from notes (README, "Plans from notes"): the Django side of
runs.engine.notes_plans. The repository and the user's right to it are settled as for any
markdown plan (runs.markdown_plans); the Planner's calls go through the LLMCaller with the
planning budget and are recorded against the repository's project (made, as a run would
make it, when there is none yet), since no run exists before the plan is accepted. Nothing
here starts a run: a person accepts the plan first."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from django.contrib.auth.models import AbstractBaseUser

from autopack_site import configuration
from runs import markdown_plans, services
from runs.config import ConfigError, RunConfig, is_git_url
from runs.engine.budget import Allowance, Budget
from runs.engine.llm import CallRecord, LLMCaller
from runs.engine.notes_plans import Ask, NotesPlan, plan_from_notes
from runs.engine.outcomes import (
    BudgetExhausted,
    ConfigurationError,
    ProviderError,
    RepositoryError,
)
from runs.engine.plan_scope import Repository
from runs.engine.plans import PlanResult, read_plan
from runs.engine.protocols import LLMResponse
from runs.engine.providers.scripted import ScriptedProvider
from runs.engine.toolchains import detect
from runs.models import Project
from runs.providers import SCRIPTED, configured_providers
from runs.recorder import PlanningRecorder

PlanInputError = markdown_plans.PlanInputError


class PlanningFailed(Exception):
    """The Planner could not be asked, or failed. `kind`: "provider" (the provider
    failed), "configuration" (no provider for the model, a configuration file) or
    "budget" (the planning budget refused the call; nothing was sent)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass
class Draft:
    plan: NotesPlan
    model: str
    records: list[CallRecord]

    @property
    def tokens(self) -> int:
        return sum(record.charged_tokens for record in self.records)

    @property
    def cost(self) -> Decimal | None:
        """The exact cost of the calls; None when any of them has no known cost."""
        costs = [record.cost for record in self.records]
        return None if None in costs else sum(costs, Decimal(0))

    def spend(self) -> dict[str, Any]:
        cost = self.cost
        return {
            "model": self.model,
            "calls": len(self.records),
            "tokens": self.tokens,
            "cost_usd": None if cost is None else f"{cost:.6f}",
        }


def draft_for_user(
    user: AbstractBaseUser,
    notes: str,
    *,
    repo: str = "",
    project: str = "",
    run_id: str = "",
    goal: str = "",
    base_dir: Path | None = None,
) -> Draft:
    """A plan drafted from `notes` for a user of the API or the dashboard, against `repo`
    or the repository of `project` (as runs.markdown_plans.read_for_user reads a plan)."""
    base_dir = base_dir or Path.cwd()
    overrides = markdown_plans.overrides_for(user, repo, project, run_id, goal, base_dir)
    return draft(notes, overrides, base_dir, user=user)


def draft(
    notes: str,
    overrides: dict[str, str],
    base_dir: Path,
    *,
    user: AbstractBaseUser | None = None,
    provider: str = "",
    progress: Callable[[str], None] = lambda _: None,
) -> Draft:
    """The Planner's plan for `notes`, read with `overrides` (the repository as `workspace`,
    and any run fields given with the notes). `provider` is a checked `--provider` value
    (runs.providers.validate_provider_option). Raises PlanInputError for bad input and
    PlanningFailed when the Planner cannot answer."""
    if not notes.strip():
        raise PlanInputError("markdown", "the notes are empty: write what you want done")
    location = overrides.get("workspace") or overrides.get("repo") or ""
    repository = _repository(location)
    project = _project(location, overrides.get("project"), user)
    ask, model, recorder = _planner(project, provider)

    def read(markdown: str) -> PlanResult:
        return read_plan(markdown, base_dir=base_dir, overrides=overrides)

    test_command = _test_command(project, repository)
    progress(f"asking the planner {model} …")
    try:
        plan = plan_from_notes(notes, repository, test_command, ask, read, progress)
    except ProviderError as exc:
        raise PlanningFailed("provider", f"the planner {model} failed: {exc}") from None
    except ConfigurationError as exc:
        raise PlanningFailed("configuration", str(exc)) from None
    except BudgetExhausted as exc:
        raise PlanningFailed(
            "budget",
            f"the planning budget refused a call to the planner {model} (it was not sent): "
            f"{exc}; raise planning.token_cap or planning.cost_cap in the model config "
            "(config/models.yaml)",
        ) from None
    return Draft(plan, model, recorder.records)


def _repository(location: str) -> Repository:
    if is_git_url(location):
        raise PlanInputError(
            "repo",
            f"a plan from notes needs the repository as a local directory (the Planner is "
            f"shown its files), and {location} is a git URL: clone it and give the directory",
        )
    try:
        return Repository(Path(location))
    except RepositoryError as exc:
        raise PlanInputError("repo", str(exc)) from None


def _planner(project: Project, provider: str) -> tuple[Ask, str, PlanningRecorder]:
    """How to ask the Planner (through the LLMCaller, with the planning budget, recorded
    against `project`), its model, and the recorder that keeps its calls."""
    try:
        models, prices = configuration.models(), configuration.prices()
    except ConfigurationError as exc:
        raise PlanningFailed("configuration", str(exc)) from None
    settings = models.planning
    model = models.notes_planner_model
    recorder = PlanningRecorder(project)
    caller = LLMCaller(
        configured_providers(),
        Budget([Allowance("planning", settings.token_cap, settings.cost_cap)], prices=prices),
        recorder,
        override=ScriptedProvider(Path(provider.removeprefix(SCRIPTED))) if provider else None,
    )

    def ask(system: str, messages: list[dict[str, str]]) -> LLMResponse:
        return caller.call("planner", model, system, messages, settings.max_output_tokens)

    return ask, model, recorder


def _project(location: str, name: str | None, user: AbstractBaseUser | None) -> Project:
    """The project a run of this repository would have, made if there is none yet."""
    wanted = RunConfig.model_construct(workspace=location, project=name)
    try:
        return services.project_for(wanted, location, user)
    except ConfigError as exc:
        raise PlanInputError("repo", "; ".join(e["message"] for e in exc.errors)) from None


def _test_command(project: Project, repository: Repository) -> str:
    """The command the phases' tests run with: the project's, else the detected one."""
    if project.test_command:
        return project.test_command
    toolchain = detect(repository.root, project.setup_command)
    return (toolchain.test_command(repository.root) if toolchain else None) or ""
