"""NED's Nuke menus: a "NED" menu in the menu bar and the NeuralEmotionDirector node in the Nodes toolbar.

Nuke runs this file in GUI sessions only, after ``init.py``. Imports ``ned_nuke`` (which loads ``nuke``
lazily); neither torch, numpy, ned_core nor ned_engine.
"""

import ned_nuke

ned_nuke.install_menus()
