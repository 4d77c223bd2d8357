"""Autodiscovery: import the modules an app's agents, tables and timers are declared in before it starts.

``App("proj", origin="proj", autodiscover=True)`` imports ``proj`` and every module under it;
``autodiscover=["proj.users", "proj.orders"]`` imports those (and the modules under them). A module's
decorators then register with the app, as they do when the worker imports them itself.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Sequence

from .errors import ConfigurationError

__all__ = ["discover"]


def discover(app_id: str, origin: str | None, autodiscover: bool | Sequence[str]) -> list[str]:
    """Import the modules ``autodiscover`` names (True: ``origin`` and its submodules); their names."""
    if autodiscover is False:
        return []
    if autodiscover is True:
        if not origin:
            raise ConfigurationError(
                f"App {app_id!r}: autodiscover=True needs origin= (the package the app is defined in)"
            )
        roots: Sequence[str] = [origin]
    elif isinstance(autodiscover, str):
        roots = [autodiscover]
    else:
        roots = list(autodiscover)
    imported: list[str] = []
    for root in roots:
        try:
            module = importlib.import_module(root)
        except ImportError as exc:
            raise ConfigurationError(f"App {app_id!r}: autodiscover cannot import {root!r}: {exc}") from exc
        imported.append(root)
        for info in pkgutil.walk_packages(getattr(module, "__path__", []), prefix=f"{root}."):
            if info.name.rsplit(".", 1)[-1] == "__main__":
                continue
            importlib.import_module(info.name)
            imported.append(info.name)
    return imported
