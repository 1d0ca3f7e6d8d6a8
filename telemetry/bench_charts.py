"""Pass rates after each try as bar charts: geometry for inline SVG that the template
draws, with every number also as text (nothing loads a chart library)."""

from __future__ import annotations

from dataclasses import dataclass

from telemetry.bench_report import pass_rates
from telemetry.models import BenchRun
from telemetry.views import COLOURS

# In viewBox units: a bar per try, bars of a group side by side, groups apart.
BAR = 14.0
GAP = 2.0
GROUP = 36.0  # at least: room for a language's name under its bars
GROUP_GAP = 10.0
TOP = 12.0  # room for the value above a full bar
PLOT = 100.0  # 100 %
BOTTOM = 14.0  # room for the group's name
SCALE = 2  # pixels per unit at full size


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    colour: str
    value: str  # drawn above the bar
    label: str  # its tooltip

    @property
    def centre(self) -> float:
        return self.x + self.width / 2

    @property
    def value_y(self) -> float:
        return self.y - 2


@dataclass(frozen=True)
class Group:
    name: str
    centre: float
    rates: list[str]  # "after try 1: 50% (1 passed)", one per try


@dataclass(frozen=True)
class Chart:
    title: str
    width: float
    bars: list[Bar]
    groups: list[Group]
    legend: list[tuple[str, str]]  # (try, colour)
    height: float = TOP + PLOT + BOTTOM
    baseline: float = TOP + PLOT

    @property
    def pixel_width(self) -> int:
        return round(self.width * SCALE)

    @property
    def pixel_height(self) -> int:
        return round(self.height * SCALE)

    @property
    def label_y(self) -> float:
        return self.height - 4

    @property
    def description(self) -> str:
        """The chart's numbers, for screen readers."""
        return "; ".join(f"{g.name}: {', '.join(g.rates)}" for g in self.groups)


def pass_rate_chart(title: str, bench: BenchRun, groups: list[tuple[str, dict]]) -> Chart:
    """One group of bars per (name, summary of `bench`), one bar per try."""
    bars, shown = [], []
    width = max(bench.tries * (BAR + GAP) - GAP, GROUP)
    for index, (name, summary) in enumerate(groups):
        left = GROUP_GAP / 2 + index * (width + GROUP_GAP)
        x = left + (width - bench.tries * (BAR + GAP) + GAP) / 2
        texts = []
        for attempt, (rate, colour) in enumerate(
            zip(pass_rates(bench, summary), COLOURS * 10, strict=False), 1
        ):
            height = round(PLOT * min(max(rate, 0.0), 100.0) / 100, 2)
            text = f"after try {attempt}: {rate:g}% ({summary[f'pass_num_{attempt}']} passed)"
            bars.append(
                Bar(
                    x,
                    round(TOP + PLOT - height, 2),
                    BAR,
                    height,
                    colour,
                    f"{rate:g}%",
                    f"{name}, {text}",
                )
            )
            texts.append(text)
            x += BAR + GAP
        shown.append(Group(name, left + width / 2, texts))
    legend = [
        (f"try {n}", colour)
        for n, colour in zip(range(1, bench.tries + 1), COLOURS * 10, strict=False)
    ]
    return Chart(title, max(len(groups), 1) * (width + GROUP_GAP), bars, shown, legend)


def language_charts(bench: BenchRun, languages: dict[str, dict], overall: dict) -> list[Chart]:
    """A chart per language, then all of them side by side with the whole benchmark."""
    charts = [
        pass_rate_chart(f"{language}: pass rate after each try", bench, [(language, summary)])
        for language, summary in languages.items()
    ]
    combined = [*languages.items(), ("all", overall)]
    return [*charts, pass_rate_chart("All languages: pass rate after each try", bench, combined)]
