"""The mouth layer: what shows between lips the edit parts, drawn in mouth space from a real smile.

Owns the inside of an edited mouth: the upper teeth under the upper lip (as far down them as the lip is
raised), the lower teeth above the lower lip (covered more by a dropped jaw's relaxed lip), the tongue
behind them in the shade of the plate's own lower lip, and the dark between, from the mouth textures of
``ned_core/data/appearance.npz`` (``build``). It is as bright as the frame's own skin beside the mouth
says, dimmed and tinted once per shot as the plate's own open mouth shows (``MouthLayer.measure_shot``).
Pixels the warp pulled out of a closed mouth (the lips parted by the edit), or out of a plate opening it
stretches past STRETCH_KEPT, always get it; inside the rest of the plate's own opening it is blended in
by how much the edit bares the teeth (AU10, AU12), and only where the edit opens the lips wider than the
plate's: under a kept opening (mouth preservation 1) a talking mouth keeps its own tongue and teeth,
which are the speech's as much as the lips are. The ``ratio`` backend composes it over the frame.

Must not import mediapipe, torch or other stages' backends.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import cv2
import numpy as np

from ned_core import mesh
from ned_core.appearance import texture
from ned_core.errors import CorruptImageError, InputNotFoundError
from ned_core.face3d.base import FaceFit
from ned_core.io import PlateImage
from ned_core.io.colour import convert, scene_linear
from ned_core.manipulate.au_fields import ACTION_UNIT_ORDER
from ned_core.ramps import smoothstep
from ned_core.render.base import FrameFace, RenderOutput

MOUTH_BLEND = 0.02  # face-local width over which the mouth's upper and lower halves meet
FREED_PX = 0.1  # a lip pair the edit parts wider than the plate's by more than this (pixels) is freed; under a
# kept opening the rig keeps each pair's gap up to float noise
LIP_EDGE = 0.015  # face-local depth under the upper inner lip over which the mouth texture shows the lip's
# own edge (its shadow on the teeth)
SHOWS_INSIDE_PX = 2.0
"""A gap between the lips narrower than this many pixels shows no mouth inside: each lip's edge blurs
over about a pixel, so lips that barely part show their own dark line, not teeth (and a plate's mouth
that narrow has nothing real to keep). The mouth layer fades in over the next SHOWS_INSIDE_PX."""
TONGUE_SHADE = 0.3  # the tongue in the mouth's shade: this share of the plate's own lower lip colour
TONGUE_EDGE = 0.02  # face-local height above the lower inner lip where the tongue is fully behind the teeth
TONGUE_DEPTH = 0.05  # face-local height above the lower teeth over which the tongue goes into the dark
TONGUE_OPENING = (0.10, 0.14)  # face-local lip gaps over which it comes into view (a smile parts 0.09)
TONGUE_HALF_WIDTH = 0.22  # along the mouth (1 = corner to corner): the tongue is narrower than the opening
TONGUE_LIP_REACH = 0.012  # face-local reach of each lower-lip sample: inside the lip's red
LOWER_LIP_OVER = 0.02  # face-local: how much more of the lower teeth a dropped jaw's relaxed lower lip covers
# than a smile's, which is pulled down off them (of the 0.04 the learned smile shows, their edges stay)
STRETCH_KEPT = 1.25  # the plate's mouth inside, stretched by the edit up to this factor, is kept as real;
# painted over from twice it
TEETH_FRAMES = 3  # the plate's most open mouths a shot's teeth light is read from
TEETH_SEEN = 2.0 * LIP_EDGE
"""Face-local: a plate mouth open less than this shows its lips' edges and their shadows (each lip's
LIP_EDGE), not the light inside it, and is not read for the teeth's light (a London still whose lips rest
4 pixels apart, 0.015 face units, read its lips' pink and painted pink teeth into its smile)."""
TEETH_FLOOR = 0.5  # a dark plate mouth dims the teeth at most this much (a smile's teeth still show)
TEETH_TINT = (0.3, 2.0)  # per-channel bounds of the plate light's tint on the teeth
_AU = {name: i for i, name in enumerate(ACTION_UNIT_ORDER)}
_LUMA = np.array([0.2126, 0.7152, 0.0722], np.float32)


@dataclass(frozen=True)
class _MouthPixels:
    """A box's pixels in the edited mouth's own coordinates (``texture.MouthFrame``; face-local units)."""

    frame: texture.MouthFrame
    along: np.ndarray
    """Position along the mouth, 0 at one corner, 1 at the other."""
    depth: np.ndarray
    """Distance below the upper inner lip."""
    height: np.ndarray
    """Distance above the lower inner lip."""
    opening: np.ndarray
    """The gap between the lips at each pixel's ``along`` (a column's, whatever the pixel's depth; 0 past
    the corners, where the lips meet)."""

    @classmethod
    def over(cls, frame: texture.MouthFrame, shape: tuple[int, int]) -> _MouthPixels:
        """Every pixel of an (h, w) box whose image coordinates ``frame`` was made in."""
        gy, gx = np.mgrid[0:shape[0], 0:shape[1]].astype(np.float64)
        coords = frame.coords(np.stack([gx, gy], axis=-1))
        along = coords[..., 0]
        depth = coords[..., 1] - frame.contour(frame.upper, along)
        height = frame.contour(frame.lower, along) - coords[..., 1]
        return cls(frame, along, depth, height, np.maximum(depth + height, 0.0))


class MouthLayer:
    """The inside of the edited mouth, from the appearance data's mouth textures.

    Parameters
    ----------
    data
        The appearance data (``ratio.load_model``): ``mouth``, ``mouth_lower``, ``mouth_skin_slope`` and,
        where the model has it, ``mouth_lip_raise``.
    strength
        How much of the layer shows inside the plate's own mouth opening as the edit bares the teeth,
        at most fully (pixels the edit opens, or stretches the plate's opening over, always get it).
    """

    def __init__(self, data: Mapping[str, np.ndarray], strength: float = 1.0) -> None:
        self.texture = np.ascontiguousarray(data["mouth"], np.float32)
        # A model built before the lower half was learned shows the upper half's texture all the way down.
        lower = data["mouth_lower"] if "mouth_lower" in data else data["mouth"]
        self.lower = np.ascontiguousarray(lower, np.float32)
        self.skin_slope = float(data["mouth_skin_slope"])
        # How far the smile the mouth is drawn from raised its upper lip, along the mouth (a model built
        # before it was stored draws the teeth as that smile showed them, whatever the lip does).
        raised = data["mouth_lip_raise"] if "mouth_lip_raise" in data else None
        self.lip_raise = None if raised is None else np.asarray(raised, np.float64)
        # How bright the learned teeth get (their 95th percentile), against which a plate's mouth is read,
        # and their colour (the brightest 5%'s mean, over its luminance).
        teeth_luma = self.texture @ _LUMA
        self._teeth_peak = float(np.percentile(teeth_luma, 95))
        brightest = self.texture[teeth_luma >= self._teeth_peak].mean(axis=0)
        self.teeth_chroma = (brightest / max(float(brightest @ _LUMA), 1e-6)).astype(np.float32)
        # Where the lower teeth end and how dark the mouth is: the tongue shows past the one, over the other.
        self._lower_teeth_top, self._dark_luma = _lower_teeth_top(self.lower)
        self.strength = float(strength)

    def measure_shot(self, fit: FaceFit, edited: np.ndarray, act: np.ndarray,
                     read: Callable[[int], PlateImage]) -> np.ndarray | None:
        """The mouth layer's light for the shot, (2, 3): its linear gain (row 0: as bright and as tinted
        as the plate's own open mouth shows) and the plate's lower lip's linear colour (row 1: the
        tongue's shade); ``act`` is the shot's (T, AUs) activations (``ACTION_UNIT_ORDER``).

        The learned teeth are white in the London photos' light and as bright as the skin beside the
        mouth says; a talking mouth is often darker inside than that, and a warm light makes teeth
        cream. The plate's most open mouths (``TEETH_FRAMES`` of them, open at least two pixels and
        ``TEETH_SEEN``) are read: the brightest tenth of what each shows inside gives the level (over
        the layer's teeth, clipped to ``TEETH_FLOOR``..1) and the colour (over the learned teeth's); the
        per-channel median scales the layer on every frame. One value per shot, so the teeth do not
        flicker with the plate's mouth (a per-frame level did); so is the lower lip's colour, the median
        over the same frames (read per frame, on a talking GRID clip it moved by 2% from frame to frame,
        11% at most). None for a shot whose mouth never opens that far (a still with closed or barely
        parted lips) or whose edit draws no mouth (no AU10, AU12, AU25 or AU26 on any frame, or no
        frame whose lips it parts wider than the plate's: under mouth preservation 1 the plate's own
        mouth shows): nothing is read then, and the skin alone lights the layer (and each frame's own
        lower lip shades the tongue). A frame that cannot be read is left out (every chunk leaves it out
        alike; rendering it reports the error), so a chunk is not failed by a damaged frame it does not
        render.
        """
        mouth_units = [_AU[name] for name in ("AU10", "AU12", "AU25", "AU26")]
        if fit.topology != mesh.TOPOLOGY or not np.any(act[:, mouth_units] > 0.0):
            return None
        openings, freed = [], False
        for index in (int(i) for i in np.flatnonzero(np.asarray(fit.found, dtype=bool))):
            unit = float(fit.scale[index])
            plate = texture.MouthFrame(fit.to_image(index, fit.local_shape(index)), unit)
            edit = texture.MouthFrame(fit.to_image(index, fit.local_shape(index, edited[index])), unit)
            freed = freed or float(np.max(edit.widened_from(plate).widened)) * unit > FREED_PX
            openings.append((-plate.widest_opening() * unit, index))
        if not freed:  # no layer is drawn on any frame: the plate's own mouth shows
            return None
        picked = [index for negative, index in sorted(openings)[:TEETH_FRAMES]
                  if -negative >= max(SHOWS_INSIDE_PX, TEETH_SEEN * float(fit.scale[index]))]
        gains = []
        for index in picked:
            try:
                image = read(fit.frames[index])
            except (InputNotFoundError, CorruptImageError):  # that frame's own render reports it
                continue
            if (light := self._mouth_light(image, fit, index)) is not None:
                gains.append(light)
        return np.median(gains, axis=0).astype(np.float32) if gains else None

    def _mouth_light(self, image: PlateImage, fit: FaceFit, index: int) -> np.ndarray | None:
        """One frame's (2, 3) measure (``measure_shot``): its plate mouth over the layer's teeth there,
        and its lower lip's linear colour."""
        points = fit.to_image(index, fit.local_shape(index))[:, :2]
        unit = float(fit.scale[index])
        polygon = texture.MouthFrame(points, unit).polygon()
        height, width = image.pixels.shape[:2]
        x0, y0 = np.maximum(np.floor(polygon.min(axis=0)).astype(int) - 1, 0)
        x1, y1 = np.minimum(np.ceil(polygon.max(axis=0)).astype(int) + 2, (width, height))
        if x1 <= x0 or y1 <= y0:
            return None
        shown = _polygon_alpha(polygon - (x0, y0), (int(y1 - y0), int(x1 - x0))) >= 0.99
        if shown.sum() < 4:
            return None
        linear_space = scene_linear()
        space = image.colorspace or linear_space
        rgb = image.pixels[..., :3]
        inner = np.ascontiguousarray(rgb[y0:y1, x0:x1][shown])
        if space != linear_space:
            inner = convert(inner[None], space, linear_space)[0]
        plate_linear = rgb if space == linear_space else None
        skin = _plate_colour(plate_linear, rgb, space, linear_space, points, unit)
        lip = _plate_colour(plate_linear, rgb, space, linear_space, points, unit, texture.LOWER_LIP_POINTS,
                            TONGUE_LIP_REACH)
        level = float(max(skin @ _LUMA, 1e-4)) ** self.skin_slope
        luma = inner @ _LUMA
        brightest = inner[luma >= np.percentile(luma, 90)].mean(axis=0)
        peak = float(brightest @ _LUMA)
        light = float(np.clip(peak / max(level * self._teeth_peak, 1e-6), TEETH_FLOOR, 1.0))
        tint = np.clip(brightest / max(peak, 1e-6) / self.teeth_chroma, *TEETH_TINT)
        return np.stack([light * tint, lip]).astype(np.float32)

    def draw(self, plate: np.ndarray, rendered: RenderOutput, face: FrameFace, edited: np.ndarray,
             source: np.ndarray, unit: float, origin: np.ndarray, shape: tuple[int, int], act: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray]:
        """(alpha (h, w), linear colour (h, w, 3)) of the mouth layer inside the edited lips, over the box
        at ``origin`` (x, y) of size ``shape``; ``edited`` and ``source`` are the meshes in the box's and
        the frame's pixels, ``act`` the frame's AU activations (``ACTION_UNIT_ORDER``)."""
        none = np.zeros(shape, np.float32), np.zeros(shape + (3,), np.float32)
        frame = texture.MouthFrame(edited, unit)
        if frame.widest_opening() * unit < 0.75:  # under a pixel: shut
            return none
        # Only where the edit opened the lips wider than the plate's (mouth preservation below 1) is
        # there new mouth to paint; a kept opening only changes shape at its rim, and its inside (the
        # tongue and teeth of each sound) stays the plate's, stretched with the lips, even in a smile:
        # a smile's teeth painted over a talking mouth hid its visemes under one still grin, and at a
        # small face's size read as a row of braces (dark lip line, two rows, dark line between).
        src_frame = texture.MouthFrame(source, unit)
        pairs = frame.widened_from(src_frame)
        pairs.widened[pairs.widened * unit <= FREED_PX] = 0.0
        if not pairs.widened.any():
            return none
        inside = _polygon_alpha(frame.polygon(), shape)
        if not inside.any():
            return none
        px = _MouthPixels.over(frame, shape)
        bare = min(1.0, act[_AU["AU12"]] + act[_AU["AU10"]]) * self.strength
        alpha = self._alpha(px, inside, src_frame, rendered, origin, unit, pairs, bare)
        # A dropped jaw's relaxed lower lip rides up over the lower teeth, as far as no smile pulls it down.
        lower_cover = LOWER_LIP_OVER * float(np.clip(act[_AU["AU26"]], 0.0, 1.0)) \
            * (1.0 - float(np.clip(act[_AU["AU12"]], 0.0, 1.0)))
        colour = self._colour(px, plate, face, source, edited, origin, unit, lower_cover)
        return alpha.astype(np.float32), colour.astype(np.float32)

    @staticmethod
    def _alpha(px: _MouthPixels, inside: np.ndarray, src_frame: texture.MouthFrame, rendered: RenderOutput,
               origin: np.ndarray, unit: float, pairs: texture.Widening, bare: float) -> np.ndarray:
        """How much of the layer shows at each pixel of the edited opening (``inside`` its polygon):
        ``pairs`` says how much wider than the plate's the edit parts each inner-lip pair (freed pairs
        only), ``bare`` how much the edit bares the teeth."""
        pair_along, widened, plate_gap = pairs
        shape = inside.shape
        # Pixels the warp fetched from outside the plate's own opening are lip pulled over nothing: they
        # must be painted. Inside the plate's opening the real mouth shows, unless the edit both opens it
        # wider and bares teeth, or stretches it: a plate opening is real mouth only near its own size,
        # kept where the edit's gap is at most STRETCH_KEPT times it, painted from twice that. Stretched
        # further it is a magnified lip line (a still's 4-pixel seam pulled into a 40-pixel surprise
        # showed streaks of lip-pink where the teeth and the dark belong).
        fresh = np.ones(shape, np.float32)
        # A plate mouth that narrow shows nothing real inside: all of the new opening is new.
        if rendered.stmap is not None and src_frame.widest_opening() * unit >= SHOWS_INSIDE_PX:
            own = _polygon_alpha(src_frame.polygon(), rendered.pixels.shape[:2])
            where = rendered.stmap[int(origin[1]):int(origin[1]) + shape[0],
                                   int(origin[0]):int(origin[0]) + shape[1]]
            # A pair parted by less than SHOWS_INSIDE_PX has nothing real inside: its stretch is counted from
            # there, so a near-shut pair beside open ones does not read as stretched a hundredfold.
            stretch = (plate_gap + widened) / np.maximum(plate_gap, SHOWS_INSIDE_PX / unit)
            real = 1.0 - smoothstep(stretch / STRETCH_KEPT - 1.0)
            fresh = 1.0 - cv2.remap(own, where[..., 0], where[..., 1], cv2.INTER_LINEAR,
                                    borderMode=cv2.BORDER_CONSTANT, borderValue=0.0) \
                * np.interp(px.along, pair_along, real).astype(np.float32)
        wider = np.clip(np.interp(px.along, pair_along, widened) * unit / 2.0, 0.0, 1.0)
        # Where the lips part by less than SHOWS_INSIDE_PX there is no layer, and it fades in over the
        # next SHOWS_INSIDE_PX, so a near-shut mouth (a talking plate between syllables, a wedge toward
        # each corner) keeps its own lip line instead of a painted slit of teeth and dark that reads as
        # lips apart (a fade that ended at SHOWS_INSIDE_PX still painted such slits at half strength).
        fade = shows_inside(px.opening * unit)
        # At most full: a ``strength`` above 1 lets a weaker smile bare its whole teeth, never past the layer.
        return inside * wider * np.minimum(np.maximum(fresh, bare), 1.0) * fade

    def _colour(self, px: _MouthPixels, plate: np.ndarray, face: FrameFace, source: np.ndarray,
                edited: np.ndarray, origin: np.ndarray, unit: float, lower_cover: float) -> np.ndarray:
        """(h, w, 3) linear colour of the mouth's inside: the learned teeth and dark, lit as the plate's
        skin and (per shot) its own mouth say, the tongue behind a dropped jaw's lower teeth;
        ``lower_cover`` (face-local) is how much more of the lower teeth the lower lip covers than the
        learned smile's did."""
        along, depth, height = px.along, px.depth, px.height
        # The upper half of the opening shows what a smile shows under the upper lip (lower on the teeth
        # where the lip is raised less), the lower half what it shows above the lower lip, meeting
        # smoothly at the middle. A dropped jaw carries the lower teeth down, and its relaxed lower lip
        # rides up over them (``lower_cover``), with the dark and the tongue between the two rows.
        per_pixel = px.frame.texels_per_pixel()
        upper_texture = texture.prefiltered(self.texture, per_pixel)
        tx, ty = texture.mouth_texel(along, depth)
        learned = cv2.remap(upper_texture, tx, ty, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        hidden = self.covered(px.frame, source - origin, edited, unit, along)
        if np.any(hidden > 0.0):  # the teeth further down, under a lip raised less than the smile's
            learned = _slid_under_lip(upper_texture, learned, along, depth, hidden)
        lower_texture = texture.prefiltered(self.lower, per_pixel)
        tx, ty = texture.mouth_texel(along, height)
        from_below = cv2.remap(lower_texture, tx, ty, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        if lower_cover > 0.0:
            # The lower teeth ride with the jaw and the lip slides up over them: the teeth further up (a
            # surprise's open mouth shows the lower incisors' edges, not a grin's whole row: both rows of
            # teeth under relaxed lips had read as a grimace).
            from_below = _slid_under_lip(lower_texture, from_below, along, height, lower_cover)
        lower = smoothstep(0.5 + (depth - height) / (2.0 * MOUTH_BLEND)).astype(np.float32)[..., None]
        learned = learned + lower * (from_below - learned)
        linear_space = scene_linear()
        space = face.colorspace or linear_space
        rgb = plate[..., :3]
        plate_linear = rgb if space == linear_space else None
        skin = _plate_colour(plate_linear, rgb, space, linear_space, source, unit)
        level = float(max(skin @ _LUMA, 1e-4)) ** self.skin_slope
        colour = learned * level
        shot = face.shot_light  # measure_shot's (2, 3): the teeth's gain, the lower lip's colour
        if shot is not None:  # as bright and tinted as the plate's own mouth shows, per shot
            colour = colour * shot[0]
        # Behind the lower teeth of a dropped jaw the tongue rises into view: no smile shows it, so it is
        # drawn, in the shade of the plate's own lower lip (without it the open mouth was one flat dark,
        # a hole cut in the face). Only where the learned texture shows the mouth's dark.
        tongue = _tongue(height, along, px.opening, learned @ _LUMA, self._lower_teeth_top - lower_cover,
                         self._dark_luma)
        if tongue.any():
            # The shot's lip where measure_shot read it (its value does not move with each frame's lips).
            lip = shot[1] if shot is not None else _plate_colour(
                plate_linear, rgb, space, linear_space, source, unit, texture.LOWER_LIP_POINTS, TONGUE_LIP_REACH)
            colour = colour + tongue[..., None] * (TONGUE_SHADE * lip - colour)
        return colour

    def covered(self, frame: texture.MouthFrame, source: np.ndarray, edited: np.ndarray, unit: float,
                 along: np.ndarray) -> np.ndarray | float:
        """How much of the teeth the learned smile showed stays under this upper lip, at each ``along``
        (face-local units; 0 where the lip is raised at least as far as that smile raised its own).

        The teeth are fixed to the skull and the upper lip slides over them: a lip raised less covers
        the top of the teeth, and its edge sits lower on them (a surprise's relaxed lip over a dropped
        jaw shows the incisors' edges, not a grin's whole row). The raise is measured from the plate's
        lip, taken to be at rest; a plate already smiling gets its teeth as if from rest.
        """
        if self.lip_raise is None:
            return 0.0
        upper = list(texture.UPPER_INNER)
        raised = (np.asarray(source, np.float64)[upper, :2] - np.asarray(edited, np.float64)[upper, :2]) @ frame.down
        edit_raise = frame.contour(np.stack([frame.upper[:, 0], raised / unit], axis=1), along)
        grid = (np.arange(len(self.lip_raise)) + 0.5) / len(self.lip_raise)
        return np.maximum(np.interp(along, grid, self.lip_raise) - edit_raise, 0.0)


def _slid_under_lip(mouth_texture: np.ndarray, read: np.ndarray, along: np.ndarray, offset: np.ndarray,
                    slide: np.ndarray | float) -> np.ndarray:
    """``read`` (the texture at ``offset`` from a lip) with the teeth ``slide`` further from that lip
    past the lip's own edge: the lip slid over teeth fixed to the skull or jaw. Within LIP_EDGE of the
    lip the texture stays as learned (the lip's edge and its shadow on the teeth)."""
    tx, ty = texture.mouth_texel(along, offset + slide)
    further = cv2.remap(mouth_texture, tx, ty, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    past_edge = smoothstep(offset / LIP_EDGE).astype(np.float32)[..., None]
    return read + past_edge * (further - read)


def _lower_teeth_top(lower: np.ndarray) -> tuple[float, float]:
    """(height above the lower inner lip where the lower teeth end, the dark's luminance) in a lower
    mouth texture: the first row past the teeth, over the middle of the mouth, below halfway from the
    dark to their brightest."""
    _, depth = texture.mouth_grid()
    n_along = lower.shape[1]
    profile = (lower[:, 3 * n_along // 8: 5 * n_along // 8] @ _LUMA).mean(axis=1)
    dark = float(profile[-1])
    brightest = int(np.argmax(profile))
    past = np.flatnonzero(profile[brightest:] < 0.5 * (dark + profile[brightest]))
    row = brightest + (int(past[0]) if len(past) else len(profile) - 1 - brightest)
    return float(depth[row, 0]), dark


def shows_inside(gap_px: np.ndarray | float) -> np.ndarray:
    """How much of a mouth's inside a gap of ``gap_px`` pixels between the lips shows: 0 up to
    SHOWS_INSIDE_PX, rising smoothly to 1 at twice it (the mouth layer and the open mouth's ratio alike)."""
    return smoothstep(np.asarray(gap_px) / SHOWS_INSIDE_PX - 1.0)


def _plate_colour(plate_linear: np.ndarray | None, rgb: np.ndarray, space: str, linear_space: str,
                  source: np.ndarray, unit: float, where: tuple[int, ...] = texture.SKIN_POINTS,
                  reach: float = 0.04) -> np.ndarray:
    """The plate's linear colour at the mesh points ``where``, by default the skin beside the mouth
    (``texture.reference_colour``; converting only the patch it reads)."""
    points = source[list(where)]
    margin = unit * max(0.1, reach) + 1.0
    x0, y0 = np.floor(points.min(axis=0) - margin).astype(int)
    x1, y1 = np.ceil(points.max(axis=0) + margin).astype(int)
    h, w = rgb.shape[:2]
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if x1 <= x0 or y1 <= y0:
        return np.full(3, 0.18, np.float32)
    patch = rgb[y0:y1, x0:x1]
    if plate_linear is None:
        patch = convert(np.ascontiguousarray(patch), space, linear_space)
    shifted = source.copy()
    shifted[:, 0] -= x0
    shifted[:, 1] -= y0
    return texture.reference_colour(patch, shifted, unit, where, reach)


def _tongue(height: np.ndarray, along: np.ndarray, opening: np.ndarray, luma: np.ndarray, teeth_top: float,
            dark: float) -> np.ndarray:
    """(h, w) float32 share of the tongue at mouth-space points ``height`` above the lower inner lip and
    ``along`` the mouth, where the lips are ``opening`` apart (face-local units; ``luma`` is the learned
    texture's luminance there, ``teeth_top`` the height where its lower teeth end, ``dark`` its dark's
    luminance). The tongue's tip rests behind the lower teeth (showing between them), lit from the
    front, and its back goes into the dark over TONGUE_DEPTH past their top; it is narrower than the
    mouth, shows only in a dropped jaw's opening, and hides behind whatever the texture shows lighter
    than the dark (fading from twice the dark's luminance, gone at eight times: teeth, lips)."""
    front = smoothstep(height / TONGUE_EDGE) * (1.0 - smoothstep((height - teeth_top) / TONGUE_DEPTH))
    middle = np.exp(-((along - 0.5) / TONGUE_HALF_WIDTH) ** 2)
    dropped = smoothstep((opening - TONGUE_OPENING[0]) / (TONGUE_OPENING[1] - TONGUE_OPENING[0]))
    dark = max(dark, 1e-4)  # a rebuilt texture whose dark is black still has a tongue
    behind = 1.0 - smoothstep((luma - 2.0 * dark) / (6.0 * dark))
    return (front * middle * dropped * behind).astype(np.float32)


def _polygon_alpha(polygon: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(h, w) float32 coverage of a polygon, anti-aliased over about a pixel."""
    canvas = np.zeros(shape, np.uint8)
    cv2.fillPoly(canvas, [np.round(polygon * 16).astype(np.int32)], 255, lineType=cv2.LINE_AA, shift=4)
    return canvas.astype(np.float32) / 255.0


