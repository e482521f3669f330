"""NED's Nuke plugin folder: Nuke runs this file at start-up (GUI, ``nuke -t`` and render nodes alike)
when the folder is on ``NUKE_PATH`` or added with ``nuke.pluginAddPath``.

Nuke has already put this folder on ``sys.path``, so ``ned_nuke`` imports from here; ``ned_protocol``
and its wheels (msgpack, pyzmq) come from ``site-packages`` beside this file (where
``installers/install.py nuke`` puts them), or from ``$NED_NUKE_SITE``. Nothing else is imported at
start-up: the node's code loads when the node is used. Imports neither torch, numpy, ned_core nor ned_engine.
"""

import os
import sys

try:
    _here = os.path.dirname(os.path.abspath(__file__))
except NameError:  # run without __file__: Nuke has put this folder on sys.path already
    _here = ""
for _folder in (_here, os.path.join(_here, "site-packages") if _here else "", os.environ.get("NED_NUKE_SITE", "")):
    if _folder and os.path.isdir(_folder) and _folder not in sys.path:
        sys.path.append(_folder)
