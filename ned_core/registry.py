"""Backends chosen by name: each stage keeps a table of ``name -> "module:Class"`` strings.

A backend's module is imported only when a job picks it, so a heavy backend (torch) costs nothing to a
job that does not use it.
"""

from __future__ import annotations

import importlib
from typing import Any

from ned_core.errors import InvalidOptionError, MissingDependencyError, UnknownBackendError


def load_backend(stage: str, table: dict[str, str], name: str, **options: Any) -> Any:
    """Build the backend ``name`` of ``stage`` from ``table`` with ``options``."""
    if name not in table:
        known = ", ".join(sorted(table))
        raise UnknownBackendError(f"unknown {stage} backend {name!r} (known: {known})", field=stage)
    module_name, class_name = table[name].split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise MissingDependencyError(
            f"the {stage} backend {name!r} needs the package {exc.name!r}: run installers/install.sh"
            + (" --ned" if name == "ned" else ""), field=stage) from exc
    try:
        return getattr(module, class_name)(**options)
    except (TypeError, ValueError) as exc:  # an unknown option name or a value of the wrong kind
        raise InvalidOptionError(f"bad options for the {stage} backend {name!r}: {exc}", field=stage) from exc
