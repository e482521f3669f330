"""The per-shot analysis cache: a shot's track and face fit, stored once and reused by every edit.

Keyed by the plate's content and the analysis settings (backends, options, face choice), so a second
edit of the same shot with other emotions skips tracking. Entries are an ``.npz`` of arrays plus a JSON
header carrying a schema label (``NedAnalysis.1``); older schema versions are upgraded on read by
dict→dict functions, one per version step (none yet). No pickle: ``np.load(allow_pickle=False)``.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ned_core.face3d.base import FaceFit
from ned_core.track.base import FaceTrack

SCHEMA = "NedAnalysis"
SCHEMA_VERSION = 1
UPGRADES: dict[int, Any] = {}  # version -> function(header dict) -> header dict of version + 1


@dataclass
class Analysis:
    """What the analysis stages found in a shot."""

    track: FaceTrack
    fit: FaceFit

    @property
    def frames(self) -> list[int]:
        return self.track.frames


def default_cache_dir() -> Path:
    """``$NED_CACHE_DIR``, else ``~/.cache/ned/analysis``."""
    env = os.environ.get("NED_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "ned" / "analysis"


def analysis_key(plate_key: str, settings: dict[str, Any]) -> str:
    """A stable hex key for a plate's content and the analysis settings."""
    blob = json.dumps({"plate": plate_key, "settings": settings, "schema": SCHEMA_VERSION},
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


class AnalysisCache:
    """A directory of cached analyses (shareable between farm nodes)."""

    def __init__(self, directory: str | Path | None = None) -> None:
        self.directory = Path(directory) if directory is not None else default_cache_dir()

    def _path(self, key: str) -> Path:
        return self.directory / f"{key}.npz"

    def load(self, key: str) -> Analysis | None:
        """The cached analysis for ``key``, or None when absent or unreadable (it is then redone)."""
        path = self._path(key)
        if not path.exists():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                header = json.loads(str(data["header"]))
                arrays = {name: data[name] for name in data.files if name != "header"}
        except (OSError, ValueError, KeyError):
            return None
        if header.get("schema") != SCHEMA:
            return None
        while header.get("version", 0) < SCHEMA_VERSION:
            upgrade = UPGRADES.get(header.get("version", 0))
            if upgrade is None:
                return None
            header = upgrade(header)
        return _from_arrays(header, arrays)

    def save(self, key: str, analysis: Analysis) -> Path:
        """Store ``analysis`` atomically (temporary name, then rename) and return its path."""
        self.directory.mkdir(parents=True, exist_ok=True)
        header, arrays = _to_arrays(analysis)
        fd, tmp = tempfile.mkstemp(dir=self.directory, suffix=".tmp.npz")
        try:
            with os.fdopen(fd, "wb") as handle:
                np.savez(handle, header=np.array(json.dumps(header)), **arrays)
            os.replace(tmp, self._path(key))
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return self._path(key)


def _to_arrays(analysis: Analysis) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    track, fit = analysis.track, analysis.fit
    header = {
        "schema": SCHEMA, "version": SCHEMA_VERSION, "frames": list(track.frames),
        "image_size": list(track.image_size), "topology": track.topology,
        "fit_params": {k: v for k, v in fit.params.items() if not isinstance(v, np.ndarray)},
    }
    arrays = {
        "track_landmarks": track.landmarks, "track_found": track.found,
        "track_confidence": track.confidence, "track_boxes": track.boxes,
        "fit_identity": fit.identity, "fit_expression": fit.expression, "fit_rotation": fit.rotation,
        "fit_scale": fit.scale, "fit_translation": fit.translation, "fit_found": fit.found,
        "fit_triangles": fit.triangles,
    }
    arrays.update({f"param_{k}": v for k, v in fit.params.items() if isinstance(v, np.ndarray)})
    return header, arrays


def _from_arrays(header: dict[str, Any], arrays: dict[str, np.ndarray]) -> Analysis:
    frames = [int(f) for f in header["frames"]]
    track = FaceTrack(
        frames=frames, landmarks=arrays["track_landmarks"], found=arrays["track_found"],
        confidence=arrays["track_confidence"], boxes=arrays["track_boxes"],
        image_size=tuple(header["image_size"]), topology=header["topology"])
    params: dict[str, Any] = dict(header.get("fit_params", {}))
    params.update({k[len("param_"):]: v for k, v in arrays.items() if k.startswith("param_")})
    fit = FaceFit(
        frames=frames, identity=arrays["fit_identity"], expression=arrays["fit_expression"],
        rotation=arrays["fit_rotation"], scale=arrays["fit_scale"],
        translation=arrays["fit_translation"], found=arrays["fit_found"], topology=header["topology"],
        triangles=arrays["fit_triangles"], params=params)
    return Analysis(track=track, fit=fit)
