"""System checks: misconfiguration found when a process starts, not as a failed run.

`autopack check` lists them; commands that work on runs (`up`, `worker`, `serve`,
`run`, `demo`) refuse to start while any of them is an error.
"""

from __future__ import annotations

from django.core.checks import Error, register

from autopack_site import configuration


@register("autopack")
def configuration_files(app_configs=None, **kwargs) -> list[Error]:
    return [
        Error(
            message,
            hint=f"Fix {file.path} (set {file.setting} to use another file).",
            obj=file.setting,
            id=file.check_id,
        )
        for file, message in configuration.problems()
    ]
