"""config/prices.yaml: USD per million tokens for each model, and the cost of a call
from the token counts the provider reported."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from runs.engine.configfile import load_config_file
from runs.engine.protocols import LLMResponse
from runs.engine.routing import qualify_model

MILLION = Decimal(1_000_000)


class Price(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    input: Decimal = Field(ge=0)
    output: Decimal = Field(ge=0)
    cache_read: Decimal | None = Field(default=None, ge=0)
    cache_write: Decimal | None = Field(default=None, ge=0)

    def per_prompt_token_worst(self) -> Decimal:
        # A prompt token costs at most the dearest way the provider may bill it.
        return max(self.input, self.cache_write or self.input) / MILLION

    def per_output_token(self) -> Decimal:
        return self.output / MILLION


class PriceTable(BaseModel):
    model_config = ConfigDict(extra="forbid")

    models: dict[str, Price] = {}

    @field_validator("models")
    @classmethod
    def _qualified(cls, models: dict[str, Price]) -> dict[str, Price]:
        return {qualify_model(name): price for name, price in models.items()}

    def price(self, model_id: str) -> Price | None:
        return self.models.get(model_id)

    def cost(self, model_id: str, response: LLMResponse) -> Decimal | None:
        """Exact cost from the reported usage; None when the price or the usage is unknown."""
        price = self.price(model_id)
        if price is None:
            return None
        if response.prompt_tokens is None or response.completion_tokens is None:
            return Decimal(0) if price.input == price.output == 0 else None
        cache_read = response.cache_read_tokens or 0
        cache_write = response.cache_write_tokens or 0
        if model_id.startswith("openai/"):
            # OpenAI counts cached tokens inside prompt_tokens.
            uncached = response.prompt_tokens - cache_read
        else:
            # Anthropic reports input, cache reads and cache writes apart.
            uncached = response.prompt_tokens
        total = (
            uncached * price.input
            + response.completion_tokens * price.output
            + cache_read * (price.cache_read if price.cache_read is not None else price.input)
            + cache_write * (price.cache_write if price.cache_write is not None else price.input)
        )
        return total / MILLION


def load_prices(path: Path) -> PriceTable:
    return load_config_file(path, PriceTable, "price table")
