"""Autopack's configuration files, read through one loader.

    config/models.yaml      AUTOPACK_MODELS      model routing and escalation
    config/prices.yaml      AUTOPACK_PRICES      USD per million tokens
    config/governance.yaml  AUTOPACK_GOVERNANCE  protected paths, risk, notifications
    config/diagnostics.yaml AUTOPACK_DIAGNOSTICS read-only probes after a failed attempt

Every process validates them when it starts (Django system checks autopack.E001 to
E004: `autopack check`; `up`, `worker`, `serve`, `run` and `demo` refuse to start on
errors). Afterwards a file is read again when it changes on disk. A change that does not
validate is logged and the last valid version stays in use, so a typo saved while
workers run does not fail their runs.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings

from governance.config import GovernanceConfig, parse_governance
from runs.engine.configfile import ConfigFileError
from runs.engine.diagnostics import DiagnosticsConfig, load_diagnostics_config
from runs.engine.outcomes import ConfigurationError
from runs.engine.pricing import PriceTable, load_prices
from runs.engine.routing import ModelsConfig, load_models_config

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ConfigFile:
    check_id: str
    setting: str
    what: str
    load: Callable[[Path], Any]

    @property
    def path(self) -> Path:
        return Path(getattr(settings, self.setting))


MODELS = ConfigFile("autopack.E001", "AUTOPACK_MODELS", "model config", load_models_config)
PRICES = ConfigFile("autopack.E002", "AUTOPACK_PRICES", "price table", load_prices)
GOVERNANCE = ConfigFile(
    "autopack.E003", "AUTOPACK_GOVERNANCE", "governance config", parse_governance
)
DIAGNOSTICS = ConfigFile(
    "autopack.E004", "AUTOPACK_DIAGNOSTICS", "diagnostics config", load_diagnostics_config
)
FILES = (MODELS, PRICES, GOVERNANCE, DIAGNOSTICS)


@dataclass(frozen=True)
class _Loaded:
    path: Path
    stamp: tuple[int, int, int] | None
    value: Any


_loaded: dict[str, _Loaded] = {}


def _stamp(path: Path) -> tuple[int, int, int] | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return (info.st_mtime_ns, info.st_size, info.st_ino)


def current(file: ConfigFile) -> Any:
    """The file's contents, read again if it changed. A file that has never been valid
    in this process stops the run that needs it (ConfigurationError, naming the key)."""
    path, stamp = file.path, _stamp(file.path)
    known = _loaded.get(file.setting)
    if known is not None and known.path == path and known.stamp == stamp:
        return known.value
    try:
        value = file.load(path)
    except ConfigFileError as exc:
        if known is None or known.path != path:
            message = f"{exc} ({file.check_id}; `autopack check` lists it)"
            raise ConfigurationError(message) from None
        logger.error("%s; still using the last valid version of %s", exc, path)
        _loaded[file.setting] = _Loaded(path, stamp, known.value)  # report it once
        return known.value
    _loaded[file.setting] = _Loaded(path, stamp, value)
    return value


def models() -> ModelsConfig:
    return current(MODELS)


def prices() -> PriceTable:
    return current(PRICES)


def governance() -> GovernanceConfig:
    return current(GOVERNANCE)


def diagnostics() -> DiagnosticsConfig:
    return current(DIAGNOSTICS)


def problems() -> list[tuple[ConfigFile, str]]:
    """Each file that does not validate, read afresh, with what is wrong. The valid ones
    become the versions this process falls back to if a later edit breaks them."""
    found = []
    for file in FILES:
        path = file.path
        try:
            _loaded[file.setting] = _Loaded(path, _stamp(path), file.load(path))
        except ConfigFileError as exc:
            found.append((file, str(exc)))
    return found
