"""Budget adherence: many simulated runs against the fake provider server (real SDKs,
real HTTP on 127.0.0.1) with random prompt sizes, output sizes and caps. Each run calls
until the budget refuses; we check that no cap was ever passed.

    .venv/bin/python bench/budget_adherence.py [--runs N] [--seed S]

Prints the number of runs and calls, the largest overshoot of any cap (must be 0) and the
share of each allowance used before the run stopped (higher is better).
"""

from __future__ import annotations

import argparse
import random
import statistics
from decimal import Decimal
from typing import Any

from runs.engine.budget import Allowance, Budget
from runs.engine.llm import LLMCaller
from runs.engine.outcomes import BudgetExhausted
from runs.engine.pricing import PriceTable
from runs.engine.providers.anthropic_provider import AnthropicProvider
from runs.engine.providers.openai_provider import OpenAIProvider
from tests.fake_llm import FakeLLM, Reply

PRICES = PriceTable.model_validate(
    {
        "models": {
            "anthropic/claude-bench": {
                "input": 3,
                "output": 15,
                "cache_read": 0.3,
                "cache_write": 3.75,
            },
            "openai/gpt-bench": {"input": 1.25, "output": 10, "cache_read": 0.125},
        }
    }
)


class Tally:
    """A Recorder that keeps what a run was charged."""

    def __init__(self) -> None:
        self.calls = 0
        self.lowered = 0

    def event(self, kind: str, **payload: Any) -> None:
        self.lowered += kind == "max_tokens_lowered"

    def llm_call(self, record: Any) -> None:
        self.calls += 1

    def cancelled(self) -> bool:
        return False


def simulate(rng: random.Random, fake: FakeLLM, providers: dict) -> dict:
    run = Allowance(
        "run",
        token_cap=rng.randint(2_000, 60_000),
        cost_cap=Decimal(rng.choice(["0.02", "0.05", "0.2"])) if rng.random() < 0.5 else None,
    )
    phase = Allowance("phase", token_cap=rng.randint(2_000, 60_000) if rng.random() < 0.3 else None)
    tally = Tally()
    caller = LLMCaller(providers, Budget([run, phase], prices=PRICES), tally)
    model = rng.choice(["anthropic/claude-bench", "openai/gpt-bench"])
    while True:
        prompt = "x" * rng.randint(200, 40_000)
        max_tokens = rng.choice([1024, 2048, 4096, 8192])
        fake.script("builder", Reply("ok", output_tokens=rng.randint(1, max_tokens)))
        try:
            caller.call(
                "builder",
                model,
                "You are the Builder.",
                [{"role": "user", "content": prompt}],
                max_tokens,
            )
        except BudgetExhausted:
            fake.replies["builder"].clear()
            break
    figures = {"calls": tally.calls, "lowered": tally.lowered, "overshoot": 0, "shares": []}
    for allowance in (run, phase):
        if allowance.token_cap:
            figures["overshoot"] = max(figures["overshoot"], allowance.tokens - allowance.token_cap)
            figures["shares"].append(allowance.tokens / allowance.token_cap)
        if allowance.cost_cap:
            over = float(allowance.cost - allowance.cost_cap)
            figures["overshoot"] = max(figures["overshoot"], over)
            figures["shares"].append(float(allowance.cost / allowance.cost_cap))
    return figures


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    fake = FakeLLM().start()
    providers = {
        "anthropic": AnthropicProvider("sk-bench", fake.url, max_retries=0),
        "openai": OpenAIProvider("sk-bench", fake.url + "/v1", max_retries=0),
    }
    try:
        results = [simulate(rng, fake, providers) for _ in range(args.runs)]
    finally:
        fake.stop()
    shares = [s for r in results for s in r["shares"]]
    print(f"runs:                         {len(results)}")
    print(f"calls sent:                   {sum(r['calls'] for r in results)}")
    print(f"calls with lowered max_tokens:{sum(r['lowered'] for r in results):>6}")
    print(f"max overshoot of any cap:     {max(r['overshoot'] for r in results)}")
    print(f"allowance used, median:       {statistics.median(shares):.1%}")
    print(f"allowance used, min / max:    {min(shares):.1%} / {max(shares):.1%}")


if __name__ == "__main__":
    main()
