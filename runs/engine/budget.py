"""Budgets that hold by construction: before every call, the worst case of that call (the
prompt, counted or conservatively estimated, plus its whole output allowance, at the
dearest price) must fit every cap, or the call is not sent."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

from runs.engine.outcomes import BudgetExhausted, ConfigurationError
from runs.engine.pricing import Price, PriceTable
from runs.engine.protocols import LLMRequest

# Below this many output tokens a reply is not worth asking for: stop instead.
MIN_USEFUL_OUTPUT = 1024


@dataclass
class Allowance:
    """One set of caps (the run's, or a phase's) and what has been spent against it."""

    label: str
    token_cap: int | None = None
    cost_cap: Decimal | None = None
    tokens: int = 0
    cost: Decimal = Decimal(0)


@dataclass
class Budget:
    allowances: list[Allowance]
    prices: PriceTable = field(default_factory=PriceTable)
    deadline: float | None = None  # time.time() after which no call is sent
    deadline_label: str = ""
    clock: Callable[[], float] = time.time

    def admit(self, model_id: str, request: LLMRequest, prompt_tokens: int) -> int:
        """The output allowance this call may have (possibly lowered to fit), or raise."""
        if self.deadline is not None and self.clock() > self.deadline:
            raise BudgetExhausted(self.deadline_label or "maximum duration reached")
        price = self.prices.price(model_id)
        capped_by_cost = [a for a in self.allowances if a.cost_cap is not None]
        if capped_by_cost and price is None:
            raise ConfigurationError(
                f"Model {model_id} has no price in the price table, and the "
                f"{capped_by_cost[0].label} has a cost cap: add the model to "
                "config/prices.yaml (AUTOPACK_PRICES) or remove the cost cap."
            )
        allowed, binding = request.max_tokens, ""
        for allowance in self.allowances:
            room, why = self._room(allowance, request, prompt_tokens, price)
            if room < allowed:
                allowed, binding = room, why
        if allowed < min(MIN_USEFUL_OUTPUT, request.max_tokens):
            raise BudgetExhausted(binding)
        return allowed

    @staticmethod
    def _room(
        allowance: Allowance, request: LLMRequest, prompt_tokens: int, price: Price | None
    ) -> tuple[int, str]:
        room, why = request.max_tokens, ""
        if allowance.token_cap is not None:
            by_tokens = allowance.token_cap - allowance.tokens - prompt_tokens
            if by_tokens < room:
                room = by_tokens
                why = (
                    f"{allowance.label} token cap {allowance.token_cap:,} reached: "
                    f"{allowance.tokens:,} used, and the next {request.role} call could "
                    f"need {prompt_tokens + request.max_tokens:,} more (prompt "
                    f"{prompt_tokens:,} + up to {request.max_tokens:,} output)"
                )
        if allowance.cost_cap is not None and price is not None:
            left = (
                allowance.cost_cap - allowance.cost - prompt_tokens * price.per_prompt_token_worst()
            )
            per_output = price.per_output_token()
            by_cost = (
                math.floor(left / per_output)
                if per_output > 0
                else (request.max_tokens if left >= 0 else -1)
            )
            if by_cost < room:
                room = by_cost
                worst = (
                    prompt_tokens * price.per_prompt_token_worst() + request.max_tokens * per_output
                )
                why = (
                    f"{allowance.label} cost cap ${allowance.cost_cap:.4f} reached: "
                    f"${allowance.cost:.4f} spent, and the next {request.role} call could "
                    f"cost up to ${worst:.4f}"
                )
        return room, why

    def charge(self, tokens: int, cost: Decimal) -> None:
        for allowance in self.allowances:
            allowance.tokens += tokens
            allowance.cost += cost
