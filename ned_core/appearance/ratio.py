"""The default appearance backend: expression ratio images and a mouth layer, learned from real smiles.

Owns applying ``ned_core/data/appearance.npz`` (see ``build``) to one rendered frame:

1. **Creases and bulges**: the smile's expression ratio image is mapped from face texture space onto the
   *edited* face mesh and multiplies the warped pixels in scene-linear light, raised to the frame's
   smile activation (AU6 + AU12): the target keeps its own skin and lighting, and gains the nasolabial
   folds, the cheeks' bulge and the lower lids' creases a real smile makes; what an open smile shows at
   the lip line and the corners is added only as far as the edited lips are apart. The other AUs add their
   drawn creases (``creases.py``) the same way, each by its activation. It all follows the tracked mesh,
   so it does not flicker, and fades with a keyframed intensity.
2. **The mouth**: where the edited lips are apart, the mouth's inside (teeth, tongue, the dark between)
   is drawn from a real smile's, lit as the plate's own mouth and skin say (``mouth.py``).
3. **The eyes**: inside the edited lids the eyeball stays unmoved, eyeball newly bared by raised lids is
   drawn, and each lid carries its margin (lashes, wet line) to its new edge (``eyes.py``), so a wide-eyed
   surprise shows white above the iris instead of a stretched iris and a smile's lower lids rise.

Must not import mediapipe, torch or other stages' backends.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from ned_core.appearance import texture
from ned_core.appearance.creases import crease_maps
from ned_core.appearance.eyes import EYES, eye_layer
from ned_core.appearance.mouth import MouthLayer, shows_inside
from ned_core.errors import InvalidOptionError
from ned_core.face3d.base import FaceFit
from ned_core.io import PlateImage
from ned_core.io.colour import convert, scene_linear
from ned_core.manipulate.au_fields import ACTION_UNIT_ORDER
from ned_core.manipulate.emotions import action_units
from ned_core.model_files import load_arrays
from ned_core.render.base import FrameFace, RenderOutput
from ned_core.render.warp import mesh_map

MODEL_FILE = Path(__file__).resolve().parent.parent / "data" / "appearance.npz"
INTENSITY_CEILING = 1.3  # creases stop deepening here however exaggerated the edit
_AU = {name: i for i, name in enumerate(ACTION_UNIT_ORDER)}


def load_model(path: str | Path = MODEL_FILE) -> dict[str, np.ndarray]:
    """The shipped appearance data (see ``build``)."""
    return load_arrays(path, "appearance model", "python -m ned_core.appearance.build")


class ExpressionAppearance:
    """Creases from expression ratio images and a mouth layer, both learned from the London smiles.

    Parameters
    ----------
    model
        Path of the appearance data (``ned_core/data/appearance.npz`` by default).
    creases
        Strength of the ratio image and the drawn creases (0 turns them off, 1 is a real smile's).
    mouth
        Strength of the mouth layer inside the plate's own mouth opening (pixels the edit opens, or
        stretches the plate's opening over, always get it).
    """

    def __init__(self, model: str | None = None, creases: float = 1.0, mouth: float = 1.0) -> None:
        for name, value in (("creases", creases), ("mouth", mouth)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 2.0:
                raise InvalidOptionError(f"appearance option {name} must be within 0..2, got {value!r}",
                                         field=name)
        data = load_model(MODEL_FILE if model is None else model)
        self.template = data["template"].astype(np.float64)
        self.triangles = texture.skin_triangles(data["triangles"])
        self.log_ratio = np.ascontiguousarray(data["smile_log_ratio"], np.float32)
        # A model built before the open mouth's part was learned apart has it inside log_ratio already.
        opened = data["smile_open_log_ratio"] if "smile_open_log_ratio" in data else np.zeros_like(self.log_ratio)
        self.open_log_ratio = np.ascontiguousarray(opened, np.float32)
        # The drawn creases of the AUs the London pairs do not cover, one map per AU that has any.
        maps = crease_maps(ACTION_UNIT_ORDER)
        self._crease_units = [i for i in range(len(maps)) if maps[i].any()]
        self._crease_maps = maps[self._crease_units]
        self.creases = float(creases)
        self.mouth_layer = MouthLayer(data, mouth)
        self._texels = texture.texels(self.template)

    def measure_shot(self, fit: FaceFit, edited: np.ndarray, weights: np.ndarray,
                     read: Callable[[int], PlateImage]) -> np.ndarray | None:
        """The mouth layer's light for the shot, (2, 3), or None (``MouthLayer.measure_shot``):
        ``weights`` are the shot's (T, 7) emotion weights, ``read`` reads a plate frame by number."""
        act = action_units(np.asarray(weights, dtype=np.float64), ACTION_UNIT_ORDER, INTENSITY_CEILING)
        return self.mouth_layer.measure_shot(fit, edited, act, read)

    def apply(self, plate: np.ndarray, rendered: RenderOutput, face: FrameFace) -> RenderOutput:
        # The learned data lives on MediaPipe's mesh; other face models get no appearance layer.
        if face.weights is None or face.fit is None or len(face.edited) != len(self.template):
            return rendered
        act = action_units(face.weights, ACTION_UNIT_ORDER, INTENSITY_CEILING)[0]
        smile = 0.5 * (act[_AU["AU6"]] + act[_AU["AU12"]]) * self.creases
        box = _box(rendered.matte)
        if box is None:
            return rendered
        ys, xs = box
        origin = np.array([xs.start, ys.start], np.float64)
        edited = np.asarray(face.edited, np.float64)[:, :2] - origin
        source = np.asarray(face.source, np.float64)[:, :2]
        unit = float(face.fit.scale[face.index])
        shape = (ys.stop - ys.start, xs.stop - xs.start)

        pixels = rendered.pixels[ys, xs]
        rgb = pixels[..., :3]
        linear_space = scene_linear()
        space = face.colorspace or linear_space
        linear = rgb if space == linear_space else convert(rgb, space, linear_space)
        gain = np.ones(shape, np.float32)
        drawn = act[self._crease_units] * self.creases
        if smile > 0.0 or np.any(drawn > 0.0):
            # The whole change in texture space first (one small image), then onto the face once. What an
            # open smile shows at the lip line and the corners comes in as the mouth layer does: with the
            # edited lips apart by more than mouth.SHOWS_INSIDE_PX.
            opening = texture.MouthFrame(edited, unit).widest_opening() * unit
            opened = float(shows_inside(opening))
            smile_ratio = self.log_ratio + opened * self.open_log_ratio if opened > 0.0 else self.log_ratio
            log_ratio = smile * smile_ratio + np.tensordot(drawn.astype(np.float32), self._crease_maps, 1)
            gain = self._gain(log_ratio.astype(np.float32), edited, unit, shape)
        eye_alpha, eye_colour = self._eyes(plate, face, edited, origin, box, space, linear_space)
        alpha, colour = self.mouth_layer.draw(plate, rendered, face, edited, source, unit, origin, shape, act)
        changed = (gain != 1.0) | (alpha > 0.0) | (eye_alpha > 0.0)
        if not changed.any():
            return rendered
        new = linear * gain[..., None]
        for layer_alpha, layer in ((eye_alpha, eye_colour), (alpha, colour)):
            if layer_alpha.any():
                new = new + layer_alpha[..., None] * (layer - new)
        out_rgb = new if space == linear_space else convert(np.ascontiguousarray(new), linear_space, space)
        result = rendered.pixels.copy()
        region = result[ys, xs]
        np.copyto(region[..., :3], out_rgb.astype(np.float32), where=changed[..., None])
        return RenderOutput(pixels=result, matte=rendered.matte, stmap=rendered.stmap)

    def _gain(self, log_ratio: np.ndarray, edited: np.ndarray, unit: float, shape: tuple[int, int]) -> np.ndarray:
        """(h, w) gain of the face texture's ``log_ratio`` on the edited mesh over the box.

        The texture holds a texel every ``unit / TEXELS_PER_UNIT`` pixels: on a large face the gain is
        sampled once per texel and scaled up (pixel centres kept aligned), which loses nothing the
        texture holds and costs a step² less; a face of under 1.5 pixels a texel is sampled per pixel,
        the texture first blurred to a pixel's footprint where a pixel spans more than a texel.
        """
        step = max(1, round(unit / texture.TEXELS_PER_UNIT))
        if step == 1:  # a small face: a pixel may span several texels
            spans = texture.TEXELS_PER_UNIT / max(unit, 1e-6)
            log_ratio = texture.prefiltered(log_ratio, (spans, spans))
        small = (-(-shape[0] // step), -(-shape[1] // step))
        mapping, covered = mesh_map((edited - 0.5 * (step - 1)) / step, self._texels, self.triangles, small)
        sampled = cv2.remap(log_ratio, mapping[..., 0], mapping[..., 1], cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
        gain = np.where(covered, np.exp(sampled), 1.0).astype(np.float32)
        if step == 1:
            return gain
        up = cv2.resize(gain, (small[1] * step, small[0] * step), interpolation=cv2.INTER_LINEAR)
        return np.ascontiguousarray(up[:shape[0], :shape[1]])

    @staticmethod
    def _eyes(plate: np.ndarray, face: FrameFace, edited: np.ndarray, origin: np.ndarray,
              box: tuple[slice, slice], space: str, linear_space: str) -> tuple[np.ndarray, np.ndarray]:
        """The eye layer (``eyes.eye_layer``) over the box, or nothing where no lid moved."""
        source = np.asarray(face.source, np.float64)[:, :2] - origin
        lids = [i for upper, lower, _ in EYES for i in upper + lower]
        shape = (box[0].stop - box[0].start, box[1].stop - box[1].start)
        if np.abs(edited[lids] - source[lids]).max() < 0.25:  # a quarter pixel: the lids stay
            return np.zeros(shape, np.float32), np.zeros(shape + (3,), np.float32)
        rgb = np.ascontiguousarray(plate[box][..., :3])
        linear = rgb if space == linear_space else convert(rgb, space, linear_space)
        return eye_layer(linear, source, edited)


def _box(matte: np.ndarray) -> tuple[slice, slice] | None:
    support = (np.asarray(matte) > 0).view(np.uint8)
    if not support.any():
        return None
    x, y, w, h = cv2.boundingRect(support)
    return slice(y, y + h), slice(x, x + w)


