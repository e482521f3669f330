"""manipulate backend ``ned``: NED's emotion manipulator driven by emotion keyframes.

Works on the DECA codes a ``deca`` face fit keeps in ``fit.params``: each frame's 51-vector
``[jaw opening pose[3], exp 0..49]``. As NED's test script does, every 10-frame window (hop 1) is
translated by the generator toward a style, and the window outputs are fused with NED's Gaussian
overlap-add (``fuse_windows``). What is ours:

* **Styles per frame from keyframes.** Label mode: one latent z ~ N(0, I) drawn from ``seed`` (0 by
  default, so every farm node gets the same result) and one style per emotion from the mapping
  network; a frame's style is the blend of the styles of its row's non-neutral emotions, weighted by
  their share. Reference mode (option ``reference``, a folder or ``.npz`` of a clip's DECA codes): one
  style, the geometric median of the style encoder's window styles over the clip. A window takes the
  mean style of its frames.
* **Intensity.** A row's non-neutral weight sum ``a`` (clamped to [0, ``max_intensity``]) scales the
  edit away from the source: ``out = src + a * (G(src, s) - src)``; ``neutral=1`` is no edit.
* **Speech.** Only the 50 expression coefficients and the jaw opening pose[3] change; the jaw follows
  the generator by ``1 - mouth_preservation`` (1, the pipeline's default, keeps the actor's jaw), one
  value for the shot or one per frame (keyed mouth preservation).

The edited codes go back into ``fit.params`` as ``edit_exp`` (T, 50) and ``edit_pose`` (T, 6) (the
source pose with pose[3] replaced), which the ``ned`` renderer reads; ``edit`` returns the edited
face-local vertex offsets through FLAME, like every manipulator.

Must not import zmq, msgpack or the engine.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ned_core.errors import InvalidOptionError
from ned_core.face3d.base import FaceFit
from ned_core.ned import deca_codes, models
from ned_core.ned.checkpoints import load_manipulator
from ned_core.ned.face3d_deca import local_shapes
from ned_core.ned.flame import load_flame
from ned_core.ned.manipulator_nets import (
    SEQ_LEN,
    fuse_windows,
    geometric_median,
    label_styles,
    sliding_windows,
)

NUM_EMOTIONS = 7
EDIT_KEYS = ("edit_exp", "edit_pose")


def fill_lost(values: np.ndarray, found: np.ndarray) -> np.ndarray:
    """Rows of lost frames replaced by the nearest found frame's row (the earlier one on a tie)."""
    idx = np.flatnonzero(found)
    if len(idx) == 0:
        raise InvalidOptionError("no frame of the shot has a face fit", field="fit")
    pos = np.searchsorted(idx, np.arange(len(values)))
    before = idx[np.clip(pos - 1, 0, len(idx) - 1)]
    after = idx[np.clip(pos, 0, len(idx) - 1)]
    rows = np.arange(len(values))
    nearest = np.where(np.abs(rows - before) <= np.abs(after - rows), before, after)
    return values[nearest]


def frame_styles(weights: np.ndarray, label_style: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(T, S) per-frame styles and (T,) intensities from (T, 7) emotion weights and (7, S) label styles.

    Rows with no non-neutral weight take the style of the nearest row that has one (their intensity is
    0, so the style only shapes the windows around them); with none at all every style is the
    neutral one.
    """
    w = np.clip(np.asarray(weights, np.float64), 0.0, None)
    emotional = w[:, 1:]
    intensity = emotional.sum(axis=1)
    active = intensity > 0
    styles = np.repeat(label_style[0][None], len(w), axis=0).astype(np.float64)
    if active.any():
        mix = emotional[active] / intensity[active, None]
        styles[active] = mix @ label_style[1:]
        styles = fill_lost(styles, active)
    return styles, intensity


class NedManipulator:
    """manipulate backend ``ned`` (see the module docstring).

    Parameters
    ----------
    checkpoint:
        A ``*_nets(_finetuned).pth``; default the manipulator in ``$NED_MODELS``.
    flame:
        FLAME model file (the offsets are FLAME vertices); default the one in ``$NED_MODELS``.
    seed:
        Seeds the latent code of label mode (same seed, same result on any machine).
    reference:
        A reference clip's DECA codes (a folder of per-frame files or a clip ``.npz``): its style
        replaces the emotion labels' (the keyframes then only set the intensity).
    max_intensity:
        Upper clamp of a row's non-neutral weight sum.
    device, batch_size:
        Where the networks run and how many windows they take at once.
    """

    def __init__(self, checkpoint: str | None = None, flame: str | None = None, seed: int = 0,
                 reference: str | None = None, max_intensity: float = 2.0, device: str = "cpu",
                 batch_size: int = 256) -> None:
        path = models.require("manipulator", option=checkpoint)
        self.device = torch.device(device)
        g, f, e = load_manipulator(path)
        self.generator, self.mapping, self.style_encoder = g.to(self.device), f.to(self.device), e.to(
            self.device)
        self.flame = load_flame(models.require("flame", option=flame))
        if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
            raise InvalidOptionError(f"seed must be an integer, got {seed!r}", field="seed")
        self.seed = int(seed)
        if not np.isfinite(max_intensity) or max_intensity < 0:
            raise InvalidOptionError(f"max_intensity must be >= 0, got {max_intensity!r}", field="max_intensity")
        self.max_intensity = float(max_intensity)
        self.batch_size = max(1, int(batch_size))
        self.reference_style = self._reference_style(Path(reference)) if reference is not None else None

    # -- styles -----------------------------------------------------------------------------------------
    @torch.no_grad()
    def _reference_style(self, path: Path) -> np.ndarray:
        frames = deca_codes.manipulator_frames(deca_codes.read_clip(path))
        if len(frames) < SEQ_LEN:
            raise InvalidOptionError(f"the reference clip {path} has {len(frames)} frames; the style encoder "
                                     f"needs at least {SEQ_LEN}", path=str(path), field="reference")
        windows = torch.from_numpy(sliding_windows(frames)).to(self.device)
        styles = torch.cat([self.style_encoder(w) for w in windows.split(self.batch_size)])
        return geometric_median(styles)

    def label_styles(self) -> np.ndarray:
        """(7, S) styles of every emotion label for this manipulator's seed (NED's label order)."""
        styles = label_styles(self.mapping, range(self.mapping.num_domains), seed=self.seed)
        return styles.cpu().double().numpy()

    # -- the edit ---------------------------------------------------------------------------------------
    @torch.no_grad()
    def translate(self, frames: np.ndarray, styles: np.ndarray) -> np.ndarray:
        """Generator output (T, 51) for (T, 51) source ``frames`` and (T, S) per-frame ``styles``.

        Shots shorter than a window are padded by repeating their last frame.
        """
        count = len(frames)
        pad = max(0, SEQ_LEN - count)
        if pad:
            frames = np.concatenate([frames, np.repeat(frames[-1:], pad, axis=0)])
            styles = np.concatenate([styles, np.repeat(styles[-1:], pad, axis=0)])
        x = torch.from_numpy(sliding_windows(np.asarray(frames, np.float32))).to(self.device)
        s = torch.from_numpy(sliding_windows(np.asarray(styles, np.float32)).mean(axis=1)).to(self.device)
        out = torch.cat([self.generator(xb, sb) for xb, sb in zip(x.split(self.batch_size),
                                                                   s.split(self.batch_size), strict=True)])
        return fuse_windows(out.float(), len(frames))[:count].astype(np.float64)

    def edit_codes(self, fit: FaceFit, weights: np.ndarray,
                   mouth_preservation: float | np.ndarray = 1.0) -> tuple[np.ndarray, np.ndarray]:
        """Edited (T, 50) expression and (T, 6) pose codes of ``fit`` for (T, 7) emotion ``weights``.

        ``mouth_preservation`` is one value or a (T,) array (one per frame).
        """
        params = fit.params
        if "exp" not in params or "pose" not in params:
            raise InvalidOptionError("the ned manipulator needs DECA codes: analyse the shot with the deca "
                                     "face model (face3d backend 'deca')", field="face3d")
        weights = np.asarray(weights, np.float64)
        count = len(fit.frames)
        if weights.shape != (count, NUM_EMOTIONS):
            raise InvalidOptionError(f"emotion weights must be ({count}, {NUM_EMOTIONS}), got {weights.shape}",
                                     field="weights")
        keep = np.asarray(mouth_preservation, np.float64)
        if keep.ndim not in (0, 1) or (keep.ndim == 1 and keep.shape != (count,)):
            raise InvalidOptionError(f"mouth_preservation must be one number or one per frame ({count},), got "
                                     f"shape {keep.shape}", field="mouth_preservation")
        if not np.all((keep >= 0.0) & (keep <= 1.0)):
            raise InvalidOptionError(f"mouth_preservation must be in [0, 1], got {mouth_preservation}",
                                     field="mouth_preservation")
        exp = np.asarray(params["exp"], np.float64)
        pose = np.asarray(params["pose"], np.float64)
        src = fill_lost(np.concatenate([pose[:, 3:4], exp], axis=1), np.asarray(fit.found, bool))
        if self.reference_style is not None:
            intensity = np.clip(weights[:, 1:], 0.0, None).sum(axis=1)
            styles = np.repeat(self.reference_style[None], count, axis=0)
        else:
            styles, intensity = frame_styles(weights, self.label_styles())
        amount = np.clip(intensity, 0.0, self.max_intensity)[:, None]
        if not amount.any():
            return exp.copy(), pose.copy()
        out = src + amount * (self.translate(src, styles) - src)
        new_exp = out[:, 1:]
        new_pose = pose.copy()
        jaw_follow = 1.0 - keep  # scalar, or per frame: each frame's jaw follows by its own share
        new_pose[:, 3] = src[:, 0] + jaw_follow * (out[:, 0] - src[:, 0])
        lost = ~np.asarray(fit.found, bool)
        new_exp[lost], new_pose[lost] = exp[lost], pose[lost]
        return new_exp, new_pose

    def edit(self, fit: FaceFit, weights: np.ndarray,
             mouth_preservation: float | np.ndarray = 1.0) -> np.ndarray:
        """Edited (T, N, 3) face-local offsets; also stores ``edit_exp`` / ``edit_pose`` in ``fit.params``."""
        new_exp, new_pose = self.edit_codes(fit, weights, mouth_preservation)
        fit.params["edit_exp"] = new_exp.astype(np.float32)
        fit.params["edit_pose"] = new_pose.astype(np.float32)
        found = np.asarray(fit.found, bool)
        edited = np.array(fit.expression, dtype=np.float32, copy=True)
        if found.any():
            shape = np.asarray(fit.params.get("identity_shape", np.asarray(fit.params["shape"])[found].mean(0)))
            verts = local_shapes(self.flame, shape, new_exp[found], new_pose[found, 3:6])
            edited[found] = verts - np.asarray(fit.identity, np.float32)
        return edited
