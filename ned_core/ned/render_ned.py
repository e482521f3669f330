"""render backend ``ned``: NED's per-actor neural face renderer, frame by frame with temporal state.

For frame t the generator sees the conditioning (``conditioning.py``) of frames t-2, t-1, t and its own
two previous outputs, all in the aligned 256-px space; its output (masked to the source face) is
warped back into the plate with the inverse alignment (Lanczos), converted from the display-referred
sRGB it was trained on to the plate's colourspace, and returned with the face mask as the matte. The
network runs in eval mode with per-image instance normalisation, which is what NED's never-``eval()``
renderer computes (see ``renderer_nets``). Unlike NED, the first two frames of a shot are rendered too:
their missing earlier conditioning repeats the first frame's, and the previous outputs start at zero.

**Temporal state and farm chunks.** The renderer keeps per-shot state (the previous outputs), so a
frame's pixels depend on where its *chain* of frames started. The chain of frame t starts at the
start of its run of found frames r, or, ``segment`` frames or more into the run, at
``r + k * segment - warmup`` with ``k = (t - r) // segment``: every ``segment`` frames the renderer
restarts from zeros ``warmup`` frames early and discards those warm-up outputs. The start is a
function of t alone, so a chunk that begins anywhere re-renders at most ``segment + warmup - 1``
frames before its first one and gives bit-identical pixels to a full run; a full run pays
``warmup / segment`` extra renders. ``segment=0`` never restarts (chunks then warm up from the run
start).

Edited geometry: the edited codes the ``ned`` manipulator leaves in ``fit.params`` (``edit_exp``,
``edit_pose``) posed through FLAME, as NED's ``create_inputs.py``; a ``FrameFace.edited_sequence``
(the whole shot's edited offsets) is used when the pipeline passes one. With another manipulator and
no sequence, earlier frames fall back to the offsets seen so far (chunks are then not exact).

Must not import zmq, msgpack or the engine.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
import torch

from ned_core.errors import InvalidOptionError
from ned_core.face3d.base import FaceFit
from ned_core.io import colour
from ned_core.ned import landmarks, models
from ned_core.ned.checkpoints import load_renderer
from ned_core.ned.conditioning import Conditioner, Conditioning, FrameGeometry
from ned_core.ned.face3d_deca import local_shapes
from ned_core.ned.flame import load_flame, nmfc_vertex_colors
from ned_core.render.base import FrameFace, RenderOutput


def chain_start(found: np.ndarray, index: int, segment: int, warmup: int) -> int:
    """The frame where the renderer's chain for ``index`` starts (see the module docstring)."""
    run = index
    while run > 0 and found[run - 1]:
        run -= 1
    if segment <= 0:
        return run
    k = (index - run) // segment
    return run if k == 0 else max(run, run + k * segment - warmup)


def run_start(found: np.ndarray, index: int) -> int:
    """First frame of the run of found frames that holds ``index``."""
    while index > 0 and found[index - 1]:
        index -= 1
    return index


@dataclass
class _ShotState:
    key: tuple[Any, ...]
    eye_ids: np.ndarray
    codes_ok: bool
    chain: int = -1
    last: int = -1
    previous: torch.Tensor | None = None
    conditioning: dict[int, Conditioning] = field(default_factory=dict)
    seen: dict[int, np.ndarray] = field(default_factory=dict)
    offsets: dict[int, np.ndarray] = field(default_factory=dict)


class NedRenderer:
    """render backend ``ned`` (see the module docstring).

    Parameters
    ----------
    checkpoint, actor:
        The generator file (``*_net_G.pth``), or the actor whose renderer in ``$NED_MODELS`` to use.
    flame, template:
        FLAME model file (NMFC colours, edited geometry) and NED's 68-point template
        (``renderer/template.gz``); defaults from ``$NED_MODELS``, the template built in when absent.
    size:
        The aligned square the renderer was trained at (256).
    segment, warmup:
        Temporal chain restarts (see the module docstring).
    colorspace:
        The plate's colourspace (default: the frame's, else the config's scene_linear).
    device, rasterizer:
        Where the generator runs; the rasterizer's visibility backend.
    """

    def __init__(self, checkpoint: str | None = None, actor: str | None = None, flame: str | None = None,
                 template: str | None = None, size: int = 256, segment: int = 50, warmup: int = 10,
                 colorspace: str | None = None, device: str = "cpu", rasterizer: str = "auto",
                 forehead: float = 0.3) -> None:
        self.device = torch.device(device)
        self.net = load_renderer(models.require("renderer", actor=actor, option=checkpoint)).to(self.device)
        factor = 2 ** sum(1 for m in self.net.model_up_img if isinstance(m, torch.nn.ConvTranspose2d))
        if size <= 0 or size % factor:
            raise InvalidOptionError(f"size must be a positive multiple of {factor}, got {size}", field="size")
        if segment < 0 or warmup < 0 or (segment and warmup >= segment):
            raise InvalidOptionError(f"need 0 <= warmup < segment (or segment=0), got {segment}, {warmup}",
                                     field="segment")
        self.flame = load_flame(models.require("flame", option=flame))
        template_path = template if template is not None else models.find("template")
        self.conditioner = Conditioner(self.flame.faces.numpy(), nmfc_vertex_colors(self.flame.v_template).numpy(),
                                       size=size, template=landmarks.template_68(size, template_path),
                                       forehead=forehead, backend=rasterizer)
        self.size, self.segment, self.warmup = int(size), int(segment), int(warmup)
        self.colorspace = colorspace
        self._state: _ShotState | None = None

    # -- per-shot state ---------------------------------------------------------------------------------
    @staticmethod
    def _key(face: FrameFace) -> tuple[Any, ...]:
        fit = face.fit
        assert fit is not None
        sequence = getattr(face, "edited_sequence", None)
        if sequence is not None:
            return (id(fit), "sequence", id(sequence))
        digest = hashlib.blake2b(digest_size=16)
        for key in ("edit_exp", "edit_pose"):
            if key in fit.params:
                digest.update(np.ascontiguousarray(fit.params[key]).tobytes())
        return (id(fit), "codes", digest.hexdigest())

    def _state_for(self, face: FrameFace) -> _ShotState:
        fit = face.fit
        if fit is None or face.index < 0:
            raise InvalidOptionError("the ned renderer needs the shot's face fit and the frame index",
                                     field="render")
        for key in ("points68", "pupils", "exp", "pose"):
            if key not in fit.params:
                raise InvalidOptionError("the ned renderer needs a face fit from the deca face model "
                                         f"(fit.params has no {key!r})", field="face3d")
        key = self._key(face)
        if self._state is None or self._state.key != key:
            found = np.flatnonzero(fit.found)
            ref = int(found[0])
            eye_ids = Conditioner.eye_vertices(self._source(fit, ref), fit.params["points68"][ref])
            self._state = _ShotState(key=key, eye_ids=eye_ids,
                                     codes_ok=key[1] == "codes" and "edit_exp" in fit.params)
        state = self._state
        if state.codes_ok and face.edited_expression is not None:
            # The codes must be the edit the pipeline hands over (another manipulator may have run on
            # this fit since): checked on every frame, it costs nothing as the frame needs them anyway.
            if face.index not in state.offsets:
                state.offsets[face.index] = self._offsets_from_codes(fit, face.index)
            tolerance = 1e-4 * max(1e-12, float(np.abs(fit.identity).max()))
            if np.abs(state.offsets[face.index] - face.edited_expression).max() > tolerance:
                state.codes_ok = False
                state.offsets.clear()
                state.conditioning.clear()
                state.chain = -1
        return state

    @staticmethod
    def _source(fit: FaceFit, j: int) -> np.ndarray:
        return fit.to_image(j, fit.local_shape(j))

    def _offsets_from_codes(self, fit: FaceFit, j: int) -> np.ndarray:
        shape = np.asarray(fit.params["identity_shape"])
        exp = np.asarray(fit.params["edit_exp"])[j:j + 1]
        jaw = np.asarray(fit.params["edit_pose"])[j:j + 1, 3:6]
        return local_shapes(self.flame, shape, exp, jaw)[0] - np.asarray(fit.identity, np.float32)

    def _edited_offsets(self, face: FrameFace, state: _ShotState, j: int) -> np.ndarray:
        """Frame ``j``'s edited offsets, from the same source whichever frame is being rendered.

        (A frame's conditioning must not depend on which frame asked for it, or chunks would differ.)
        """
        fit = face.fit
        assert fit is not None
        sequence = getattr(face, "edited_sequence", None)
        if sequence is not None:
            return np.asarray(sequence[j])
        if state.codes_ok:
            if j not in state.offsets:
                state.offsets[j] = self._offsets_from_codes(fit, j)
                for old in [k for k in state.offsets if k < j - 2]:
                    del state.offsets[old]
            return state.offsets[j]
        if j == face.index and face.edited_expression is not None:
            return np.asarray(face.edited_expression)
        return state.seen.get(j, np.asarray(fit.expression[j]))

    def _conditioning(self, face: FrameFace, state: _ShotState, j: int) -> Conditioning:
        if j not in state.conditioning:
            fit = face.fit
            assert fit is not None
            pupils = np.asarray(fit.params["pupils"][j], np.float64)
            geometry = FrameGeometry(
                source=self._source(fit, j),
                edited=fit.to_image(j, fit.identity + self._edited_offsets(face, state, j)),
                points68=np.asarray(fit.params["points68"][j], np.float64),
                pupils=None if np.isnan(pupils).any() else pupils)
            state.conditioning[j] = self.conditioner.frame(geometry, state.eye_ids)
            for old in [k for k in state.conditioning if k < j - 2]:
                del state.conditioning[old]
        return state.conditioning[j]

    @torch.no_grad()
    def _step(self, face: FrameFace, state: _ShotState, j: int) -> torch.Tensor:
        """Render frame ``j`` of the chain: (3, S, S) in [-1, 1]; updates the previous outputs."""
        fit = face.fit
        assert fit is not None
        first = run_start(np.asarray(fit.found, bool), j)
        window = [max(first, j - k) for k in range(self.net.n_frames - 1, -1, -1)]
        conds = [self._conditioning(face, state, k).channels() for k in window]
        cond = torch.from_numpy(np.concatenate(conds, axis=0))[None].to(self.device)
        if state.previous is None:
            n_prev = self.net.model_down_img[1].in_channels
            state.previous = torch.zeros(1, n_prev, self.size, self.size, device=self.device)
        out = self.net(cond, state.previous)
        state.previous = torch.cat([state.previous[:, out.shape[1]:], out], dim=1)
        state.last = j
        return out[0]

    def render_aligned(self, face: FrameFace) -> tuple[np.ndarray, Conditioning]:
        """The generator's output for ``face``'s frame: (S, S, 3) display-referred RGB in [0, 1]."""
        state = self._state_for(face)
        fit = face.fit
        assert fit is not None
        i = face.index
        if face.edited_expression is not None:
            state.seen[i] = np.asarray(face.edited_expression)
        start = chain_start(np.asarray(fit.found, bool), i, self.segment, self.warmup)
        if state.chain != start or state.last != i - 1 or state.previous is None:
            state.chain, state.previous = start, None
            for j in range(start, i):  # warm-up: outputs discarded
                self._step(face, state, j)
        out = self._step(face, state, i)
        rgb = ((out.permute(1, 2, 0).float().cpu().numpy() + 1.0) / 2.0).clip(0.0, 1.0)
        return rgb, state.conditioning[i]

    # -- the stage interface ----------------------------------------------------------------------------
    def render(self, image: np.ndarray, face: FrameFace) -> RenderOutput:
        """New face pixels for ``image`` ((H, W, C) float32 in the plate's colourspace)."""
        rgb, cond = self.render_aligned(face)
        height, width = image.shape[:2]
        corners = np.array([[0, 0], [self.size, 0], [0, self.size], [self.size, self.size]], np.float64)
        back = landmarks.apply_2d(landmarks.invert_2d(cond.align), corners)
        x0, y0 = np.maximum(np.floor(back.min(axis=0)).astype(int) - 2, 0)
        x1, y1 = np.minimum(np.ceil(back.max(axis=0)).astype(int) + 2, [width, height])
        pixels = np.array(image, dtype=np.float32, copy=True)
        matte = np.zeros((height, width), np.float32)
        if x1 <= x0 or y1 <= y0:
            return RenderOutput(pixels=pixels, matte=matte)
        shifted = cond.align.copy()
        shifted[:, 2] += cond.align[:, :2] @ np.array([x0, y0], np.float64)
        dsize = (int(x1 - x0), int(y1 - y0))
        face_rgb = cv2.warpAffine(rgb.astype(np.float32), shifted, dsize,
                                  flags=cv2.INTER_LANCZOS4 | cv2.WARP_INVERSE_MAP, borderValue=0)
        mask = cv2.warpAffine(cond.mask, shifted, dsize, flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                              borderValue=0)
        mask = np.clip(mask, 0.0, 1.0)
        plate_space = self.colorspace or getattr(face, "colorspace", None) or colour.scene_linear()
        face_plate = colour.convert(np.clip(face_rgb, 0.0, 1.0), colour.display_colorspace(), plate_space)
        region = pixels[y0:y1, x0:x1]
        inside = mask > 0
        region[..., :3][inside] = face_plate[inside]
        matte[y0:y1, x0:x1] = mask
        return RenderOutput(pixels=pixels, matte=matte)
