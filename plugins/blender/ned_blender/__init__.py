"""NED for Blender: a sidebar panel ("NED") in the Video Sequencer and the Compositor that sends the active
movie or image strip to a ``ned-engine`` and brings the emotion-edited frames back as a strip above it.

Loads as a Blender extension (``blender_manifest.toml``; ``ned_protocol``, ``msgpack`` and ``pyzmq`` come
as wheels Blender installs) and as a legacy add-on (``bl_info``; ``import ned_blender;
ned_blender.register()``). ``pump()`` takes the engine's events and loads finished results: the modal
``ned.process`` operator calls it from its timer, headless scripts call it themselves.

Layout (like glTF-Blender-IO): ``properties`` (data), ``operators``, ``panels``, ``engine`` (the
protocol client side, no bpy), ``sequencer`` (strips in and out), ``jobs`` (following jobs, ``pump``),
``compat`` (4.2 … 5.0 differences) and ``logic/`` (no bpy; tested by plain pytest). The only network
dependency is ``ned_protocol``; nothing here imports torch, numpy or ``ned_core``.
"""

import os
import sys

bl_info = {
    "name": "NED: Neural Emotion Director",
    "author": "NED",
    "version": (0, 1, 0),
    "blender": (4, 2, 0),
    "location": "Video Sequencer / Compositor > Sidebar > NED",
    "description": "Change the emotion an actor's face shows in a strip, keeping the speech",
    "category": "Sequencer",
}


def _find_protocol() -> None:
    """Make ``ned_protocol`` importable: installed (extension wheel, pip), ``$NED_PROTOCOL_PATH``, or the
    repository's ``protocol/`` folder when the add-on runs from a checkout (development and tests)."""
    try:
        import ned_protocol  # noqa: F401
        return
    except ImportError:
        pass
    here = os.path.dirname(os.path.abspath(__file__))
    for folder in (os.environ.get("NED_PROTOCOL_PATH", ""), os.path.join(here, "..", "..", "..", "protocol")):
        if folder and os.path.isfile(os.path.join(folder, "ned_protocol", "__init__.py")):
            sys.path.append(os.path.normpath(folder))
            return


_find_protocol()

if "bpy" in locals():  # "Reload Scripts": pick up edits of the submodules too
    import importlib

    for _name in ("logic", "compat", "engine", "properties", "sequencer", "jobs", "operators", "panels"):
        if _name in locals():
            importlib.reload(locals()[_name])

try:
    import bpy
except ImportError:  # plain Python (tests of logic/, tools): only ``logic`` and ``engine`` are usable
    bpy = None

from . import engine, logic  # noqa: E402,F401

if bpy is not None:
    from . import compat, jobs, operators, panels, properties, sequencer  # noqa: F401

    CLASSES = (*operators.CLASSES, *panels.CLASSES)


def pump() -> int:
    """Take the engine's events, update progress, load finished results; the number of jobs still running.

    Never waits. Call it repeatedly (headless Blender has no timers) until it returns 0.
    """
    return jobs.pump()


def register() -> None:
    if bpy is None:
        raise ImportError("ned_blender.register() runs inside Blender (no bpy module here)")
    properties.register()
    for cls in CLASSES:
        bpy.utils.register_class(cls)


def unregister() -> None:
    jobs.clear()
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
    properties.unregister()
