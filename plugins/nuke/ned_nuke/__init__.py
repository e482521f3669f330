"""NED for Nuke: the NeuralEmotionDirector node, which sends its Source to a ``ned-engine`` and shows the
edited frames.

Layout (as docs/ARCHITECTURE.md and STYLE.md ask): ``logic/`` holds the node's logic as plain functions
(knobs as data, knob values and curves → JobSpec, paths, colourspaces, event handling, the worker-thread
job runner, starting a local engine), tested without Nuke; ``host`` is the one module that calls
``nuke``; ``farm`` writes a node's job for ``ned-engine analyze/render``. ``import ned_nuke`` works in a
plain Python: ``host`` (and with it ``nuke``) is imported only when a function below needs it.

Imports ``ned_protocol`` only (never torch, numpy, ned_core or ned_engine); Python 3.9+ syntax, as Nuke
14/15 ship Python 3.9/3.10.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"


def create_node() -> Any:
    """Create a NeuralEmotionDirector node in the current Nuke script."""
    from ned_nuke import host

    return host.create_node()


def install_menus() -> None:
    """Add the NED menu and the Nodes-toolbar entry (``menu.py`` calls this)."""
    from ned_nuke import host

    host.install_menus()


__all__ = ["__version__", "create_node", "install_menus"]
