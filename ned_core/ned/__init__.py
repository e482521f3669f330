"""The NED backend's torch networks, key- and shape-compatible with NED's released checkpoints.

Modules (each imports torch; this package file does not, so ``import ned_core.ned`` stays cheap):

* ``manipulator_nets`` - the emotion manipulator: Generator, MappingNetwork, StyleEncoder, Discriminator
  and the inference helpers (window fusion, geometric median, label styles).
* ``renderer_nets`` - the per-actor neural face renderer: Generator and MultiscaleDiscriminator.
* ``flame`` - the FLAME head model (loads the user's ``generic_model.pkl`` without chumpy or scipy).
* ``deca_encoder`` - DECA's coarse ResNet-50 encoder and its 224-px face crop.
* ``rasterizer`` - a pure-PyTorch mesh rasterizer for the NMFC conditioning images.
* ``checkpoints`` - loading, checking and saving checkpoints in NED's file layout.
* ``models`` - where every model file lives (``$NED_MODELS``), its source and licence (no torch).
* ``safe_pickle``, ``deca_codes`` - reading FLAME's and NED's pickles without running code; per-frame
  DECA codes as npz/JSON.
* ``landmarks`` - the 68-point scheme, MediaPipe -> 68 mapping, the alignment template.
* ``conditioning`` - the renderer's NMFC / eye / shape / mask images in the aligned space.
* ``face3d_deca``, ``manipulate_ned``, ``render_ned`` - the pipeline backends ``deca``, ``ned``, ``ned``
  (the ``pyramid`` compositor is ``ned_core.composite.pyramid``, torch-free).
* ``vgg``, ``training``, ``train_manipulator``, ``train_renderer`` - the trainers.

Must not import zmq, msgpack or the engine. Importing any submodule without torch installed raises
``MissingDependencyError`` naming the install step.
"""

from __future__ import annotations

import importlib.util

from ned_core.errors import MissingDependencyError

if importlib.util.find_spec("torch") is None:
    # Every submodule imports torch; failing here gives one clear message instead of a bare ImportError.
    raise MissingDependencyError(
        "the NED backend needs PyTorch: run installers/install.sh --ned (or pip install 'ned-core[ned]')",
        field="backend")

__all__: list[str] = []
