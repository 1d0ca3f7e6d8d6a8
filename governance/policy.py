"""Which paths are protected, and how risky a change is, by explicit rules."""

from __future__ import annotations

from fnmatch import fnmatchcase
from pathlib import PurePosixPath

from governance.config import GovernanceConfig

RISK_ORDER = ["low", "medium", "high", "critical"]


def matches(path: str, pattern: str) -> bool:
    """`dir/` matches that folder anywhere; a pattern with `/` the whole path (* spans
    folders); any other pattern the file name."""
    pattern = pattern.strip()
    if pattern.endswith("/"):
        folder = pattern.rstrip("/")
        parts = PurePosixPath(path).parts[:-1]
        needle = tuple(PurePosixPath(folder).parts)
        return any(parts[i : i + len(needle)] == needle for i in range(len(parts)))
    if "/" in pattern:
        return fnmatchcase(path, pattern.lstrip("/"))
    return fnmatchcase(PurePosixPath(path).name, pattern)


def protected(paths: list[str], patterns: list[str]) -> list[str]:
    return [path for path in paths if any(matches(path, p) for p in patterns)]


def path_risk(path: str, is_protected: bool, config: GovernanceConfig) -> tuple[str, str]:
    for pattern in config.risk.critical:
        if matches(path, pattern):
            return "critical", f"{path} matches {pattern} (critical)"
    for pattern in config.risk.low:
        if matches(path, pattern):
            return "low", f"{path} matches {pattern} (tests/docs: low)"
    if is_protected:
        return "high", f"{path} is protected"
    return "medium", f"{path} needs approval in this phase"


def change_risk(
    paths: list[str],
    protected_paths: list[str],
    lines_changed: int,
    config: GovernanceConfig,
    floor: str = "low",
) -> tuple[str, list[str]]:
    """The highest risk of the paths, raised to high for a large change."""
    level, reasons = floor, []
    for path in paths:
        risk, why = path_risk(path, path in protected_paths, config)
        reasons.append(why)
        level = max(level, risk, key=RISK_ORDER.index)
    if lines_changed > config.risk.large_change_lines:
        reasons.append(f"{lines_changed} lines changed (over {config.risk.large_change_lines})")
        level = max(level, "high", key=RISK_ORDER.index)
    return level, reasons


def proposal_risk(
    paths: list[str],
    protected_paths: list[str],
    lines_changed: int,
    tests_passed: bool,
    auditor_approved: bool,
    config: GovernanceConfig,
) -> tuple[str, list[str]]:
    """A proposal is low risk when it is small, its tests passed, the Auditor approved it
    and it touches no protected path (it is in its scope: the apply path saw to that).
    Each condition that fails raises the risk and says why."""
    level, reasons = "low", []
    for path in paths:
        risk, why = path_risk(path, path in protected_paths, config)
        if risk in ("high", "critical"):
            reasons.append(why)
            level = max(level, risk, key=RISK_ORDER.index)
    small = config.risk.small_change_lines
    if lines_changed > config.risk.large_change_lines:
        reasons.append(f"{lines_changed} lines changed (over {config.risk.large_change_lines})")
        level = max(level, "high", key=RISK_ORDER.index)
    elif lines_changed > small:
        reasons.append(f"{lines_changed} lines changed (over {small}: not small)")
        level = max(level, "medium", key=RISK_ORDER.index)
    if not tests_passed:
        reasons.append("its tests did not run and pass")
        level = max(level, "medium", key=RISK_ORDER.index)
    if not auditor_approved:
        reasons.append("no Auditor approved it")
        level = max(level, "medium", key=RISK_ORDER.index)
    if level == "low":
        reasons.append(
            f"in scope, {lines_changed} lines changed (at most {small}), tests passed, "
            "Auditor approved, no protected path"
        )
    return level, reasons
