"""The appearance stage: creases and a mouth layer on top of the warp, only inside the matte."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from face_fixtures import skin, template_fit

from ned_core import EMOTIONS, appearance, mesh
from ned_core.appearance import texture
from ned_core.appearance.mouth import SHOWS_INSIDE_PX, TEETH_SEEN
from ned_core.appearance.ratio import MODEL_FILE, ExpressionAppearance, load_model
from ned_core.errors import (
    CorruptImageError,
    CorruptModelError,
    InputNotFoundError,
    InvalidOptionError,
    MissingModelError,
)
from ned_core.face3d.base import FaceFit
from ned_core.manipulate.facs import FacsRig
from ned_core.render.base import FrameFace
from ned_core.render.warp import MeshWarpRenderer


@pytest.fixture(scope="module")
def stage() -> ExpressionAppearance:
    return ExpressionAppearance()


@pytest.fixture(scope="module")
def fit() -> FaceFit:
    """The appearance template as a one-frame face."""
    return template_fit([1])


def weights(emotion: str, intensity: float = 1.0) -> np.ndarray:
    w = np.zeros(len(EMOTIONS))
    w[EMOTIONS.index(emotion)] = intensity
    return w


def render(fit: FaceFit, emotion: str, intensity: float, mouth_preservation: float,
           stage: ExpressionAppearance) -> tuple[np.ndarray, object, object]:
    w = weights(emotion, intensity)
    edited = FacsRig().edit(fit, w[None], mouth_preservation=mouth_preservation)
    face = FrameFace(source=fit.to_image(0, fit.local_shape(0)), edited=fit.to_image(0, fit.local_shape(0, edited[0])),
                     triangles=fit.triangles, fit=fit, index=0, colorspace=None, weights=w[None])
    plate = skin()
    warped = MeshWarpRenderer().render(plate, face)
    return plate, warped, stage.apply(plate, warped, face)


def mouth_box(fit: FaceFit) -> tuple[slice, slice]:
    pts = fit.to_image(0, fit.local_shape(0))
    x, y = pts[mesh.UPPER_LIP_INNER, :2].astype(int)
    return slice(y - 15, y + 30), slice(x - 40, x + 40)


def test_registered_as_default_and_none_passes_through(fit: FaceFit) -> None:
    assert appearance.DEFAULT == "ratio"
    _, warped, _ = render(fit, "happy", 1.0, 0.0, ExpressionAppearance())
    assert appearance.get("none").apply(skin(), warped, None) is warped


def test_changes_stay_inside_the_matte(fit: FaceFit, stage: ExpressionAppearance) -> None:
    for emotion in ("happy", "surprised", "disgusted"):
        _, warped, out = render(fit, emotion, 1.0, 0.0, stage)
        changed = np.any(out.pixels != warped.pixels, axis=-1)
        assert changed.any(), emotion
        assert not np.any(changed & (warped.matte <= 0)), emotion
        assert np.array_equal(out.pixels[..., 3], warped.pixels[..., 3])  # alpha untouched


def test_zero_intensity_leaves_the_render_alone(fit: FaceFit, stage: ExpressionAppearance) -> None:
    _, warped, out = render(fit, "happy", 0.0, 0.0, stage)
    assert np.array_equal(out.pixels, warped.pixels)


def test_a_free_mouth_gets_teeth_a_kept_closed_mouth_does_not(fit: FaceFit, stage: ExpressionAppearance) -> None:
    box = mouth_box(fit)
    _, _, free = render(fit, "happy", 1.0, 0.0, stage)
    _, warped, kept = render(fit, "happy", 1.0, 1.0, stage)
    # Teeth are brighter than the skin they replace.
    assert free.pixels[box][..., :3].max() > warped.pixels[box][..., :3].max() + 0.1
    # Under full mouth preservation a shut mouth stays shut: only creases (a gentle gain) change it.
    ratio = kept.pixels[box][..., :3] / np.maximum(warped.pixels[box][..., :3], 1e-6)
    assert ratio.max() < 1.6 and ratio.min() > 0.4


def parted(fit: FaceFit, pixels: float, whole_lip: bool = False) -> FaceFit:
    """``fit`` with its lower lip and jaw dropped so the inner lips part by ``pixels`` in the middle
    (``whole_lip``: every lower inner-lip point moves, so the gap is even along the mouth, not only
    where the template's lower inner lip lies below its mean line)."""
    template = fit.identity
    mouth_y = template[[mesh.UPPER_LIP_INNER, mesh.LOWER_LIP_INNER], 1].mean()
    half = 0.5 * abs(template[mesh.MOUTH_LEFT, 0] - template[mesh.MOUTH_RIGHT, 0])
    lower = (template[:, 1] > mouth_y + 1e-4) & (np.abs(template[:, 0]) < 0.8)
    if whole_lip:
        lower[list(texture.LOWER_INNER)] = True
        lower[list(texture.UPPER_INNER)] = False
    across = np.clip(1.0 - (np.abs(template[:, 0]) / (half + 0.05)) ** 2, 0.0, 1.0)
    expression = np.zeros_like(fit.expression)
    expression[0, :, 1] = pixels / float(fit.scale[0]) * lower * across
    return dataclasses.replace(fit, expression=expression)


def test_a_kept_mouth_barely_parted_keeps_its_own_lip_line(fit: FaceFit, stage: ExpressionAppearance) -> None:
    # Between syllables a talking mouth parts by a pixel or so: a smile must not paint a slit of dark
    # and teeth into it (the lips would read as apart), nor darken it as an open smile's corners are.
    box = mouth_box(fit)

    def gain(pixels: float) -> np.ndarray:
        _, warped, out = render(parted(fit, pixels), "happy", 1.0, 1.0, stage)
        return out.pixels[box][..., :3] / np.maximum(warped.pixels[box][..., :3], 1e-6)

    slit, opened = gain(1.2), gain(8.0)
    assert slit.max() < 1.6 and slit.min() > 0.4  # creases only, as on a shut mouth (0.49 measured)
    assert opened.min() < 0.8 * slit.min()  # an open smile's dark corners (0.56 against 0.87)


def test_lips_freed_but_parted_under_two_pixels_get_no_layer(fit: FaceFit, stage: ExpressionAppearance) -> None:
    # A gap under SHOWS_INSIDE_PX resolves nothing inside (each lip's edge blurs over about a pixel):
    # the layer paints none of it (a fade that ended at 2 px painted such a slit at up to 97%).
    def widest(intensity: float) -> float:
        edited = FacsRig().edit(fit, weights("happy", intensity)[None], mouth_preservation=0.0)
        shape = fit.to_image(0, fit.local_shape(0, edited[0]))
        return texture.MouthFrame(shape, float(fit.scale[0])).widest_opening() * float(fit.scale[0])

    weak = 0.9 * SHOWS_INSIDE_PX / widest(1.0)  # the free lips part by about 1.8 pixels
    assert 1.0 < widest(weak) < SHOWS_INSIDE_PX
    layer_only = ExpressionAppearance(creases=0.0)  # no ratio image or drawn creases: only the layers
    box = mouth_box(fit)
    _, warped, out = render(fit, "happy", weak, 0.0, layer_only)
    np.testing.assert_array_equal(out.pixels[box], warped.pixels[box])
    _, warped, out = render(fit, "happy", 2.0 * weak, 0.0, layer_only)  # 3.1 pixels: the layer fades in
    assert np.any(out.pixels[box] != warped.pixels[box])


def test_a_smile_keeps_a_talking_mouths_own_inside_unless_the_lips_are_freed(
        fit: FaceFit, stage: ExpressionAppearance) -> None:
    """Under a kept opening the tongue and teeth of each sound are the speech's: a smile stretches them
    with the lips and paints nothing over them (``mouth=0`` turns off the layer inside the plate's own
    opening, except where the edit stretches it past STRETCH_KEPT); freed (mouth preservation 0) and
    opened wider, the smile shows its own teeth there, as far as it bares them."""
    for yaw in (0.0, 65.0):  # a head turned far enough that the lips' order along the mouth changes
        a = np.radians(yaw)
        turn = np.array([[np.cos(a), 0.0, np.sin(a)], [0.0, 1.0, 0.0], [-np.sin(a), 0.0, np.cos(a)]])
        talking_mouth = parted(dataclasses.replace(fit, rotation=(turn @ fit.rotation[0])[None]), 8.0)
        _, _, kept = render(talking_mouth, "happy", 1.0, 1.0, stage)
        _, _, kept_no_layer = render(talking_mouth, "happy", 1.0, 1.0, ExpressionAppearance(mouth=0.0))
        np.testing.assert_array_equal(kept.pixels, kept_no_layer.pixels, err_msg=f"yaw {yaw}")
    box = mouth_box(fit)
    talking_mouth = parted(fit, 8.0)
    _, warped, freed = render(talking_mouth, "happy", 1.0, 0.0, ExpressionAppearance(creases=0.0))
    painted = np.any(freed.pixels[box] != warped.pixels[box], axis=-1)
    assert painted.sum() > 100  # the freed opening is drawn (teeth and the dark), not the stretched plate
    # Opened only a little wider than the plate's even 12-pixel gap (not stretched past STRETCH_KEPT),
    # the plate's inside stays real: the smile's teeth come in as far as it bares them (``mouth``).
    open_mouth = parted(fit, 12.0, whole_lip=True)
    edited = FacsRig().edit(open_mouth, weights("happy", 0.15)[None], mouth_preservation=0.0)
    unit = float(fit.scale[0])
    plate_frame = texture.MouthFrame(open_mouth.to_image(0, open_mouth.local_shape(0)), unit)
    edit_frame = texture.MouthFrame(open_mouth.to_image(0, open_mouth.local_shape(0, edited[0])), unit)
    _, widened, plate_gap = edit_frame.widened_from(plate_frame)
    middle = plate_gap * unit > 10.0
    assert np.all(widened[middle] * unit > 0.5) and np.all(widened[middle] / plate_gap[middle] < 0.25)
    _, _, bared = render(open_mouth, "happy", 0.15, 0.0, ExpressionAppearance(creases=0.0))
    _, _, not_bared = render(open_mouth, "happy", 0.15, 0.0, ExpressionAppearance(creases=0.0, mouth=0.0))
    assert np.any(bared.pixels[box] != not_bared.pixels[box], axis=-1).sum() > 50
    # ``mouth`` above 1 bares a weaker smile's teeth fully, never past the layer: a full smile at 2 is
    # drawn as at 1 (an unclamped blend had pushed the mouth's pixels to -0.45 there).
    _, _, full = render(open_mouth, "happy", 1.0, 0.0, ExpressionAppearance(creases=0.0))
    _, _, doubled = render(open_mouth, "happy", 1.0, 0.0, ExpressionAppearance(creases=0.0, mouth=2.0))
    np.testing.assert_array_equal(doubled.pixels, full.pixels)


def test_a_plate_opening_stretched_far_is_painted_over(fit: FaceFit) -> None:
    """A plate's own mouth inside is real only near its own size: a still's lip seam a few pixels open,
    pulled into a surprise's wide opening, must show the learned teeth and dark, not the seam magnified
    (streaks of lip-pink); an opening the edit barely widens keeps the plate's inside."""
    layer_only = ExpressionAppearance(creases=0.0)  # no ratio image or drawn creases: only the layers
    unit = float(fit.scale[0])

    def painted_share(plate_gap_px: float, emotion: str, intensity: float) -> tuple[float, float]:
        plate_fit = parted(fit, plate_gap_px, whole_lip=True)
        edited = FacsRig().edit(plate_fit, weights(emotion, intensity)[None], mouth_preservation=0.0)
        shape = plate_fit.to_image(0, plate_fit.local_shape(0, edited[0]))
        frame = texture.MouthFrame(shape, unit)
        inside = np.zeros(skin().shape[:2], np.uint8)
        cv2.fillPoly(inside, [np.round(frame.polygon()).astype(np.int32)], 1)
        inside = cv2.erode(inside, np.ones((3, 3), np.uint8)) > 0  # clear of the lips' blurred edges
        _, warped, out = render(plate_fit, emotion, intensity, 0.0, layer_only)
        changed = np.any(out.pixels != warped.pixels, axis=-1)
        return float(changed[inside].mean()), frame.widest_opening() * unit

    share, opened = painted_share(4.0, "surprised", 1.0)
    assert opened > 5.0 * 4.0  # the surprise opens the 4-pixel seam more than five times as wide
    assert share > 0.9
    share, opened = painted_share(12.0, "surprised", 0.05)  # widened by a fraction of its gap
    assert 12.0 < opened < 1.25 * 12.0
    assert share < 0.1


def test_a_dropped_jaw_shows_a_tongue_in_the_shade_of_the_plates_own_lip(fit: FaceFit) -> None:
    """Behind the lower teeth of a surprised still's open mouth the tongue shows, coloured from the
    plate's lower lip (a green-lipped plate gets a greenish tongue, a red-lipped one a reddish one);
    it goes into the mouth's dark further up."""
    layer_only = ExpressionAppearance(creases=0.0)
    w = weights("surprised")
    edited = FacsRig().edit(fit, w[None], mouth_preservation=0.0)
    source_px = fit.to_image(0, fit.local_shape(0))
    edited_px = fit.to_image(0, fit.local_shape(0, edited[0]))
    face = FrameFace(source=source_px, edited=edited_px, triangles=fit.triangles, fit=fit, index=0,
                     colorspace=None, weights=w[None])
    unit = float(fit.scale[0])
    frame = texture.MouthFrame(edited_px, unit)
    gy, gx = np.mgrid[0:skin().shape[0], 0:skin().shape[1]].astype(np.float64)
    along, offset = np.moveaxis(frame.coords(np.stack([gx, gy], axis=-1)), -1, 0)
    height = frame.contour(frame.lower, along) - offset
    middle = np.abs(along - 0.5) < 0.15

    def mean_colour(lip: tuple[float, float, float], low: float, high: float) -> np.ndarray:
        plate = skin()
        for x, y in source_px[list(texture.LOWER_LIP_POINTS), :2]:
            cv2.circle(plate, (round(x), round(y)), 3, (*lip, 1.0), -1)
        out = layer_only.apply(plate, MeshWarpRenderer().render(plate, face), face)
        return out.pixels[middle & (height > low) & (height < high)][:, :3].mean(axis=0)

    assert frame.widest_opening() > 0.14  # a dropped jaw, wider than a smile's 0.09
    green, red = (0.1, 0.5, 0.1), (0.5, 0.1, 0.1)
    tongue_green, tongue_red = mean_colour(green, 0.04, 0.06), mean_colour(red, 0.04, 0.06)
    assert tongue_green[1] > 1.5 * tongue_green[0] and tongue_red[0] > 1.5 * tongue_red[1]
    # Further up, past TONGUE_DEPTH above the teeth, only the dark is left, whatever the lips' colour.
    np.testing.assert_allclose(mean_colour(green, 0.115, 0.125), mean_colour(red, 0.115, 0.125), atol=1e-4)
    # On footage the shot's lip (measure_shot's row 1) shades every frame's tongue alike, whatever that
    # frame's own lips show: a per-frame read moved with them.
    face = dataclasses.replace(face, shot_light=np.array([[1.0, 1.0, 1.0], red], np.float32))
    assert mean_colour(green, 0.04, 0.06)[0] > 1.5 * mean_colour(green, 0.04, 0.06)[1]


def test_a_dropped_jaws_relaxed_lower_lip_covers_all_but_the_lower_teeths_edges(
        fit: FaceFit, monkeypatch: pytest.MonkeyPatch) -> None:
    """The lower teeth ride with the jaw and a relaxed lower lip rides up over them: a surprised still
    shows the lower incisors' edges, not the whole row a smile (its lip pulled down off them) shows."""
    from ned_core.appearance import mouth

    w = weights("surprised")
    edited = FacsRig().edit(fit, w[None], mouth_preservation=0.0)
    unit = float(fit.scale[0])
    frame = texture.MouthFrame(fit.to_image(0, fit.local_shape(0, edited[0])), unit)
    gy, gx = np.mgrid[0:skin().shape[0], 0:skin().shape[1]].astype(np.float64)
    along, offset = np.moveaxis(frame.coords(np.stack([gx, gy], axis=-1)), -1, 0)
    height = frame.contour(frame.lower, along) - offset
    middle = np.abs(along - 0.5) < 0.2

    def luminance(low: float, high: float) -> float:
        _, _, out = render(fit, "surprised", 1.0, 0.0, ExpressionAppearance(creases=0.0))
        return float(out.pixels[middle & (height > low) & (height < high)][:, :3].mean())

    edges, top_of_row = luminance(0.015, 0.03), luminance(0.045, 0.06)
    monkeypatch.setattr(mouth, "LOWER_LIP_OVER", 0.0)
    whole_edges, whole_top = luminance(0.015, 0.03), luminance(0.045, 0.06)
    assert top_of_row < 0.5 * whole_top  # where the whole row's upper half showed, the dark and tongue
    assert edges > 0.8 * whole_edges  # their edges still show above the lip


def test_the_tongue_stays_out_of_a_smile_and_behind_the_teeth() -> None:
    from ned_core.appearance.mouth import _tongue

    height = np.linspace(0.0, 0.2, 201)[:, None] * np.ones((1, 5))
    along = np.full_like(height, 0.5)
    dark, teeth_top = 0.04, 0.06
    shown = _tongue(height, along, np.full_like(height, 0.16), np.full_like(height, dark), teeth_top, dark)
    assert shown.max() > 0.9  # right behind the lower teeth, in a dropped jaw
    assert not shown[height > teeth_top + 0.05].any()  # gone into the dark further back
    smile = _tongue(height, along, np.full_like(height, 0.09), np.full_like(height, dark), teeth_top, dark)
    assert not smile.any()  # a smile's parted lips show none
    teeth = _tongue(height, along, np.full_like(height, 0.16), np.full_like(height, 0.9), teeth_top, dark)
    assert not teeth.any()  # nothing over the teeth the texture shows


def test_creases_fade_with_the_intensity(fit: FaceFit, stage: ExpressionAppearance) -> None:
    def change(intensity: float) -> float:
        _, warped, out = render(fit, "happy", intensity, 1.0, stage)
        return float(np.abs(out.pixels - warped.pixels).sum())

    assert 0.0 < change(0.3) < change(0.6) < change(1.0)


def test_bad_options_and_a_missing_model(tmp_path) -> None:
    with pytest.raises(InvalidOptionError):
        ExpressionAppearance(creases=-1.0)
    with pytest.raises(MissingModelError, match="appearance.build"):
        ExpressionAppearance(model=str(tmp_path / "nope.npz"))


def test_shipped_model_is_small_and_learned_from_every_london_pair() -> None:
    assert MODEL_FILE.stat().st_size < 300_000
    data = load_model()
    assert len(data["person_ids"]) == 35
    assert 0.0 <= float(data["mouth_skin_slope"]) <= 1.0
    # Both halves of the mouth, learned from the same smiles: the upper one's teeth are bright near the
    # upper lip, and both end in the same dark, so they meet without a seam in a wide mouth.
    upper, lower = data["mouth"].astype(np.float32), data["mouth_lower"].astype(np.float32)
    assert upper.shape == lower.shape
    assert np.allclose(upper[-1], lower[-1], atol=2e-3)
    mid = upper.shape[1] // 2
    assert upper[upper.shape[0] // 8, mid].mean() > 3.0 * upper[-1, mid].mean()
    # How far that smile raised its upper lip, along the mouth: up everywhere, a few millimetres.
    raised = data["mouth_lip_raise"]
    assert raised.shape == (upper.shape[1],) and np.all(np.isfinite(raised))
    assert np.all((raised > 0.02) & (raised < 0.15))


def test_the_shipped_ratio_image_keeps_the_open_mouth_apart_from_the_skin() -> None:
    # The smiles' parted lips showed teeth and dark where the neutral photos showed lips: learned as one
    # ratio with the skin, that lit the lip line and darkened the lip corners (log -0.65) of every edited
    # face, open or shut. The skin's ratio now leaves each photo's opening out; what the opening adds is
    # a second map, the dark pockets at the corners of an open smile among it.
    data = load_model()
    skin_ratio = data["smile_log_ratio"].astype(np.float32)
    open_ratio = data["smile_open_log_ratio"].astype(np.float32)
    texels = np.round(texture.texels(data["template"].astype(np.float64))).astype(int)
    inner_lips = sorted({i for pair in mesh.INNER_LIP_PAIRS for i in pair})
    assert np.abs(skin_ratio[texels[inner_lips, 1], texels[inner_lips, 0]]).max() < 0.05
    for corner in (mesh.INNER_LIP_PAIRS[0][0], mesh.INNER_LIP_PAIRS[-1][0]):
        x, y = texels[corner]
        assert open_ratio[y - 2:y + 3, x - 2:x + 3].min() < -0.3


def test_the_open_mouths_ratio_shows_only_where_the_lips_are_apart(fit: FaceFit, stage: ExpressionAppearance) -> None:
    without = ExpressionAppearance(creases=1.0, mouth=1.0)
    without.open_log_ratio = np.zeros_like(without.open_log_ratio)

    def differs(pixels: float) -> bool:
        moved = parted(fit, pixels)
        _, _, out = render(moved, "happy", 1.0, 1.0, stage)
        _, _, skin_only = render(moved, "happy", 1.0, 1.0, without)
        return not np.array_equal(out.pixels, skin_only.pixels)

    assert not differs(0.0) and not differs(0.9 * SHOWS_INSIDE_PX)  # shut, or a slit: skin only
    assert differs(8.0)


def test_a_model_learned_as_one_map_still_loads(tmp_path) -> None:
    # A model rebuilt before the open mouth's part was split off holds it inside smile_log_ratio.
    old = tmp_path / "appearance.npz"
    np.savez(old, **{key: value for key, value in load_model().items() if key != "smile_open_log_ratio"})
    stage = ExpressionAppearance(model=str(old))
    assert not stage.open_log_ratio.any() and stage.open_log_ratio.shape == stage.log_ratio.shape


def test_a_model_without_the_smiles_lip_raise_draws_the_teeth_as_learned(
        tmp_path, fit: FaceFit, stage: ExpressionAppearance) -> None:
    old = tmp_path / "appearance.npz"
    np.savez(old, **{key: value for key, value in load_model().items() if key != "mouth_lip_raise"})
    legacy = ExpressionAppearance(model=str(old))
    assert legacy.mouth_layer.lip_raise is None
    _, _, with_raise = render(fit, "surprised", 1.0, 0.0, stage)
    _, _, without = render(fit, "surprised", 1.0, 0.0, legacy)
    # It still draws the open mouth, the teeth as the smile showed them (more of them than under the raise).
    box = mouth_box(fit)
    assert not np.array_equal(with_raise.pixels[box], without.pixels[box])
    luma = np.array([0.2126, 0.7152, 0.0722], np.float32)
    assert (without.pixels[box][..., :3] @ luma).mean() > (with_raise.pixels[box][..., :3] @ luma).mean()


def test_a_dropped_jaw_shows_the_lower_teeth_above_the_lower_lip(fit: FaceFit, stage: ExpressionAppearance) -> None:
    """The jaw carries the lower teeth down with the lower lip: just above the lip they show, the dark
    lies between the two rows (a flat dark band from the upper teeth to the lip read as a pasted bar)."""
    _, _, free = render(fit, "surprised", 1.0, 0.0, stage)
    edited = FacsRig().edit(fit, weights("surprised", 1.0)[None], mouth_preservation=0.0)
    frame = texture.MouthFrame(fit.to_image(0, fit.local_shape(0, edited[0])), float(fit.scale[0]))
    luma = free.pixels[..., :3] @ np.array([0.2126, 0.7152, 0.0722], np.float32)

    def luma_at(height: float) -> float:  # face-local units above the lower inner lip, mid-mouth
        xy = frame.to_image_above_lower(np.array([0.5]), np.array([height]))[0]
        return float(luma[int(round(xy[1])), int(round(xy[0]))])

    assert frame.widest_opening() > 0.08
    assert luma_at(0.02) > 2.0 * luma_at(0.5 * frame.opening(np.array([0.5]))[0])


def test_a_lip_raised_less_than_the_learned_smiles_covers_the_top_of_the_teeth(
        fit: FaceFit, stage: ExpressionAppearance) -> None:
    """The teeth are fixed to the skull and the upper lip slides over them: under a lip raised by the
    learned smile's own amount the mouth texture is read as learned; raised less (or lowered), as much
    deeper as the lip fell short."""
    grid = (np.arange(len(stage.mouth_layer.lip_raise)) + 0.5) / len(stage.mouth_layer.lip_raise)
    learned = float(np.interp(0.5, grid, stage.mouth_layer.lip_raise))  # mid-mouth
    source = fit.to_image(0, fit.local_shape(0))[:, :2]
    unit = float(fit.scale[0])
    for raised, covered in ((learned + 0.01, 0.0), (learned, 0.0), (learned - 0.03, 0.03), (0.0, learned),
                            (-0.02, learned + 0.02)):
        edited = source.copy()
        edited[list(texture.UPPER_INNER), 1] -= raised * unit
        frame = texture.MouthFrame(edited, unit)
        got = stage.mouth_layer.covered(frame, source, edited, unit, np.array([0.5]))
        assert got[0] == pytest.approx(covered, abs=1e-3)


def test_the_learned_lip_raise_is_how_far_the_smile_lifted_the_upper_lip(fit: FaceFit) -> None:
    from ned_core.appearance.build import upper_lip_raise

    neutral = fit.to_image(0, fit.local_shape(0)).astype(np.float64)
    smiling = neutral.copy()
    lifted = np.linspace(4.0, 8.0, len(texture.UPPER_INNER))  # pixels, more toward one corner
    smiling[list(texture.UPPER_INNER), 1] -= lifted
    along = np.array([0.0, 0.5, 1.0])
    got = upper_lip_raise(neutral, smiling, along)
    unit = mesh.canonical_pose(smiling)[0]
    frame = texture.MouthFrame(smiling, unit)
    ends = np.argsort(frame.upper[:, 0])[[0, -1]]
    np.testing.assert_allclose(got[[0, 2]], lifted[ends] / unit, rtol=0.02)
    assert lifted.min() / unit * 0.98 < got[1] < lifted.max() / unit * 1.02


def test_the_lip_under_the_teeth_keeps_its_edge(fit: FaceFit, stage: ExpressionAppearance) -> None:
    """Right under the upper lip the texture is the lip's own edge (its shadow on the teeth) however far
    down the teeth the lip sits: a lip lowered on them must not start in bright enamel."""
    _, _, out = render(fit, "surprised", 1.0, 0.0, stage)
    edited = FacsRig().edit(fit, weights("surprised", 1.0)[None], mouth_preservation=0.0)
    frame = texture.MouthFrame(fit.to_image(0, fit.local_shape(0, edited[0])), float(fit.scale[0]))
    luma = out.pixels[..., :3] @ np.array([0.2126, 0.7152, 0.0722], np.float32)
    along = np.linspace(0.35, 0.65, 7)
    at = [frame.to_image(along, np.full(7, depth)) for depth in (0.004, 0.03)]
    edge, teeth = ([float(luma[int(round(y)), int(round(x))]) for x, y in points] for points in at)
    assert np.median(edge) < 0.4 * np.median(teeth)  # as learned: 0.29 of it; bent into the teeth: 0.54


def test_raised_lids_bare_white_and_leave_the_iris_unmoved(fit: FaceFit, stage: ExpressionAppearance) -> None:
    plate, warped, out = render(fit, "surprised", 1.0, 1.0, stage)
    pts = fit.to_image(0, fit.local_shape(0))
    centre, ring = pts[468, :2], pts[469:473, :2]
    radius = float(np.mean(np.linalg.norm(ring - centre, axis=1)))
    x, y = np.round(centre).astype(int)
    inner = max(1, int(radius * 0.5))
    iris = (slice(y - inner, y + inner + 1), slice(x - inner, x + inner + 1))
    # The warp drags the iris up with the lid; the eye layer shows the plate's own eyeball there.
    assert not np.array_equal(warped.pixels[iris], plate[iris])
    np.testing.assert_allclose(out.pixels[iris][..., :3], plate[iris][..., :3], atol=1e-5)


def test_a_damaged_model_is_a_corrupt_model_error(tmp_path) -> None:
    bad = tmp_path / "appearance.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(CorruptModelError, match="appearance.build"):
        ExpressionAppearance(model=str(bad))


def talking(fit: FaceFit, drops: list[float]) -> FaceFit:
    """``fit`` over one frame per drop: everything below the mouth line lowered by that much (face-local)."""
    template = fit.identity
    mouth_y = template[[mesh.UPPER_LIP_INNER, mesh.LOWER_LIP_INNER], 1].mean()
    below = ((template[:, 1] > mouth_y) & (np.abs(template[:, 0]) < 0.45)).astype(np.float64)
    expression = np.zeros((len(drops), mesh.N_VERTICES, 3))
    expression[:, :, 1] = np.asarray(drops)[:, None] * below[None]
    n = len(drops)
    return FaceFit(frames=list(range(1, n + 1)), identity=template, expression=expression,
                   rotation=np.repeat(fit.rotation, n, axis=0), scale=np.repeat(fit.scale, n),
                   translation=np.repeat(fit.translation, n, axis=0), found=np.ones(n, dtype=bool),
                   topology=mesh.TOPOLOGY, triangles=fit.triangles)


def plate_with_mouth(fit: FaceFit, index: int, inside: float, tint: tuple[float, float, float] = (1.0, 1.0, 1.0)
                     ) -> SimpleNamespace:
    """A skin plate whose open mouth (frame ``index`` of ``fit``) shows ``inside`` times the skin, tinted."""
    pixels = skin()
    polygon = texture.MouthFrame(fit.to_image(index, fit.local_shape(index)), float(fit.scale[index])).polygon()
    mask = np.zeros(pixels.shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.round(polygon).astype(np.int32)], 1)
    pixels[mask > 0, :3] = np.float32(0.35 * inside) * np.asarray(tint, np.float32)
    return SimpleNamespace(pixels=pixels, colorspace=None)


def test_the_plates_own_mouth_lights_the_teeth_once_per_shot(fit: FaceFit, stage: ExpressionAppearance) -> None:
    shot = talking(fit, [0.0, 0.05, 0.09, 0.02])
    happy4 = np.tile(weights("happy"), (4, 1))
    read_frames: list[int] = []
    luma = np.array([0.2126, 0.7152, 0.0722])

    def reader(inside: float, tint: tuple[float, float, float] = (1.0, 1.0, 1.0)):
        def read(frame: int) -> SimpleNamespace:
            read_frames.append(frame)
            return plate_with_mouth(shot, shot.frames.index(frame), inside, tint)
        return read

    def teeth_level(light: np.ndarray) -> float:
        """How much the shot's light (its gain, row 0) scales the learned teeth's luminance."""
        return float((light[0] * stage.mouth_layer.teeth_chroma) @ luma)

    freed = FacsRig().edit(shot, happy4, mouth_preservation=0.0)
    dark = stage.measure_shot(shot, freed, happy4, reader(0.05))
    assert teeth_level(dark) == pytest.approx(0.5, abs=1e-3)  # a dark mouth dims the teeth to the floor
    np.testing.assert_allclose(dark[1], 0.35, atol=0.03)  # the lower lip's colour (skin-grey here), for the tongue
    assert set(read_frames) <= {2, 3, 4} and 1 not in read_frames  # only the most open mouths are read
    assert teeth_level(stage.measure_shot(shot, freed, happy4, reader(20.0))) == pytest.approx(1.0, abs=1e-3)
    assert 0.5 < teeth_level(stage.measure_shot(shot, freed, happy4, reader(1.0))) < 1.0  # between floor and full
    warm = stage.measure_shot(shot, freed, happy4, reader(20.0, (1.3, 1.0, 0.6)))[0]
    assert warm[0] > 1.1 * warm[1] > 1.3 * warm[2]  # a warm light makes cream teeth
    shut = talking(fit, [0.0, 0.0])
    shut_freed = FacsRig().edit(shut, happy4[:2], mouth_preservation=0.0)
    assert stage.measure_shot(shut, shut_freed, happy4[:2], reader(0.05)) is None  # a mouth never open
    sad4 = np.tile(weights("sad"), (4, 1))
    sad = FacsRig().edit(shot, sad4, mouth_preservation=0.0)
    assert stage.measure_shot(shot, sad, sad4, reader(0.05)) is None  # no mouth drawn
    read_frames.clear()
    kept = FacsRig().edit(shot, happy4, mouth_preservation=1.0)
    assert stage.measure_shot(shot, kept, happy4, reader(0.05)) is None  # the plate's own mouth shows
    assert not read_frames  # and nothing was read for it
    # The layer is drawn that much dimmer.
    w = weights("happy")
    edited = FacsRig().edit(fit, w[None], mouth_preservation=0.0)
    box = mouth_box(fit)

    def drawn(gain: np.ndarray | None) -> np.ndarray:
        face = FrameFace(source=fit.to_image(0, fit.local_shape(0)),
                         edited=fit.to_image(0, fit.local_shape(0, edited[0])), triangles=fit.triangles, fit=fit,
                         index=0, colorspace=None, weights=w[None], shot_light=gain)
        plate = skin()
        return stage.apply(plate, MeshWarpRenderer().render(plate, face), face).pixels[box][..., :3]

    full, dimmed = drawn(None), drawn(dark)
    teeth = full > dimmed + 1e-4
    assert teeth.sum() > 50  # the mouth layer is what changed, and it is darker
    assert float(dimmed[teeth].mean()) < 0.8 * float(full[teeth].mean())


def test_lips_barely_apart_are_not_read_for_the_teeths_light(fit: FaceFit, stage: ExpressionAppearance) -> None:
    # A few pixels between the lips of a large face show the lips' edges, not the mouth inside: reading
    # them tinted a smile's teeth with the lips' pink.
    unit = float(fit.scale[0])
    seam = 0.024  # face units: under TEETH_SEEN, though over SHOWS_INSIDE_PX pixels on this face
    assert seam < TEETH_SEEN and seam * unit > 1.5 * SHOWS_INSIDE_PX
    happy2 = np.tile(weights("happy"), (2, 1))

    def measured(drop: float) -> np.ndarray | None:
        shot = talking(fit, [0.0, drop])

        def pink(frame: int) -> SimpleNamespace:  # lips as pink as the light would be inside
            return plate_with_mouth(shot, shot.frames.index(frame), 20.0, (1.0, 0.5, 0.55))

        return stage.measure_shot(shot, FacsRig().edit(shot, happy2, mouth_preservation=0.0), happy2, pink)

    assert measured(seam) is None  # the skin alone lights the layer: white teeth
    assert measured(0.09) is not None  # an open mouth is read


def test_a_damaged_frame_is_left_out_of_the_shot_measure(fit: FaceFit, stage: ExpressionAppearance) -> None:
    shot = talking(fit, [0.0, 0.05, 0.09, 0.02])
    happy4 = np.tile(weights("happy"), (4, 1))

    def read(frame: int) -> SimpleNamespace:
        if frame == 3:  # the most open mouth
            raise CorruptImageError("frame 3 is damaged")
        return plate_with_mouth(shot, shot.frames.index(frame), 20.0)

    gain = stage.measure_shot(shot, FacsRig().edit(shot, happy4, mouth_preservation=0.0), happy4, read)
    assert gain is not None and np.all(np.isfinite(gain))  # measured from the other open mouths


def test_no_readable_open_mouth_gives_no_measure(fit: FaceFit, stage: ExpressionAppearance) -> None:
    def read(frame: int) -> SimpleNamespace:
        raise InputNotFoundError(f"frame {frame} is missing")

    pair = talking(fit, [0.05, 0.09])
    happy2 = np.tile(weights("happy"), (2, 1))
    assert stage.measure_shot(pair, FacsRig().edit(pair, happy2, mouth_preservation=0.0), happy2, read) is None


def test_full_smile_slope_is_a_strength_weighted_median() -> None:
    """The learned ratio image is a robust slope of ratio over smile strength: the weighted median of
    ratio / strength (weights strength²) per texel, NaN (texels a photo does not cover) left out."""
    from ned_core.appearance.build import _weighted_median

    strengths = np.array([0.5, 1.0, 1.5, 2.0])
    per_unit = np.array([-0.2, -0.1, 0.3])  # three texels' change for a smile of strength 1
    ratios = strengths[:, None] * per_unit[None, :]
    ratios[1, 2] = np.nan
    slope = _weighted_median((ratios / strengths[:, None])[:, None, :], strengths**2)[0]
    np.testing.assert_allclose(slope, per_unit)
    outlier = np.array([[5.0], [1.0], [1.0], [1.0]])[:, :, None]  # one mis-registered photo: ignored
    assert _weighted_median(outlier, np.ones(4))[0, 0] == 1.0
    assert _weighted_median(np.full((3, 1, 1), np.nan), np.ones(3))[0, 0] == 0.0


def test_the_mouth_is_one_real_smiles_the_one_nearest_the_median() -> None:
    """A median of teeth over persons blurred every tooth's edges into a band with a seam where different
    smiles' incisal edges lay; the mouth is now drawn from one person, the one nearest the median among
    those who show (almost) all of what the median shows."""
    from ned_core.appearance.build import _exemplar, _median, _mouth_texture

    shape = (40, 24, 3)  # (depth, along, RGB): the smiles show 20 rows of teeth under the upper lip
    persons = []
    for level, shift in ((1.0, 0), (2.0, 1), (3.0, 2)):  # each smile's tooth gaps lie elsewhere
        x = np.full(shape, np.nan, np.float32)
        x[:20] = level
        x[:20, shift::4] = 0.5 * level
        persons.append(x)
    for _ in range(2):  # two smiles that barely part their lips, equal to the median where they show
        x = np.full(shape, np.nan, np.float32)
        x[:6] = 2.0
        persons.append(x)
    stack = np.stack(persons)
    median, known = _median(stack)
    assert _exemplar(stack, median, known) == 1  # nearest the median among those that show enough of it
    mouth = _mouth_texture(stack, median, known, 1).mean(axis=2)
    # Its own tooth gaps (columns 1, 5, 9...: only the final 3x3 blur touches them), not the median's
    # (which dips at column 10, another smile's gap) nor another smile's; beyond the teeth, one dark.
    rows = slice(8, 18)
    assert mouth[rows, 9].max() < 1.6 and mouth[rows, 10].min() > 1.7 and mouth[rows, 11].min() > 1.9
    assert np.allclose(mouth[30:], mouth[-1, 0]) and mouth[-1, 0] < 1.0


def test_the_exemplars_lower_lip_is_not_drawn_inside_the_mouth() -> None:
    """The tracked inner lip runs inside the lip's red, so the deepest rows a smile shows under its upper
    lip are its lower lip: a relaxed lip over a dropped jaw reads that deep, and drew a pink arc under
    the upper teeth. Those rows are the mouth's dark instead."""
    from ned_core.appearance.build import _median, _mouth_texture

    shape = (40, 24, 3)
    persons = []
    for _ in range(3):
        x = np.full(shape, np.nan, np.float32)
        x[:16] = 2.0  # teeth
        x[16:20] = (1.2, 0.5, 0.5)  # the smile's own lower lip, above the tracked line
        persons.append(x)
    stack = np.stack(persons)
    median, known = _median(stack)
    lip = np.zeros(shape[:2], bool)
    lip[16:] = True
    plain, cut = _mouth_texture(stack, median, known, 0), _mouth_texture(stack, median, known, 0, beyond=lip)
    assert plain[17, 12, 0] > 2.0 * plain[17, 12, 2]  # the lip's red
    np.testing.assert_allclose(cut[18:, 12], np.broadcast_to(plain[-1, 12], (22, 3)))  # the dark beyond the teeth
    np.testing.assert_allclose(cut[:14], plain[:14])  # the teeth as they were


def test_the_shipped_mouth_names_the_smile_it_is_drawn_from() -> None:
    data = load_model()
    assert int(data["mouth_exemplar"]) in set(int(p) for p in data["mouth_person_ids"])


def test_a_mouth_no_smile_shows_is_a_clear_error() -> None:
    from ned_core.appearance.build import _exemplar, _median

    stack = np.full((1, 8, 8, 3), np.nan, np.float32)  # one smile: too few to know any texel
    with pytest.raises(InputNotFoundError, match="cannot learn the mouth"):
        _exemplar(stack, *_median(stack))


def test_a_raised_lid_takes_its_margin_along_and_leaves_no_seam() -> None:
    """Raising the upper lid bares eyeball where the plate showed the lid's dark margin: that band is drawn
    as eyeball, and the margin lines the lid's new edge instead of staying across the iris."""
    from ned_core.appearance.eyes import EYES, eye_layer

    face = template_fit([1])
    source = face.to_image(0, face.local_shape(0))[:, :2]
    upper, _, _ = EYES[0]
    middle = upper[len(upper) // 2]
    x, was_top = int(round(source[middle, 0])), source[middle, 1]
    plate = np.full((340, 400, 3), 0.8, np.float32)
    ys = np.arange(plate.shape[0])[:, None]
    lid_row = np.interp(np.arange(plate.shape[1]), source[list(upper), 0], source[list(upper), 1])[None, :]
    plate[(ys >= lid_row) & (ys < lid_row + 2.0)] = 0.05  # the lid's margin: shadow and lashes
    edited = source.copy()
    edited[list(upper), 1] -= 6.0  # the upper lid 6 px up (AU5)
    alpha, colour = eye_layer(plate, source, edited)
    luma = colour[..., 1]
    seam = int(np.floor(was_top)) + 1
    assert alpha[seam, x] > 0.99 and luma[seam, x] > 0.3  # bared eyeball, not the old dark margin
    new_edge = int(np.ceil(was_top - 6.0))
    assert alpha[new_edge, x] > 0.5 and luma[new_edge, x] < 0.3  # the margin moved up with the lid


@pytest.mark.parametrize("lid", ["lower", "upper"])
def test_a_narrowing_lid_takes_its_margin_along(lid: str) -> None:
    """A lid that closes over the eyeball (the lower lid up in a smile or a glare, the upper lid down in
    sadness) carries its margin, which lies inside the tracked opening (the wet line, the lashes), to its
    new edge: the unmoved eyeball must not cover it, or the lid would seem not to move."""
    from ned_core.appearance.eyes import EYES, eye_layer

    face = template_fit([1])
    source = face.to_image(0, face.local_shape(0))[:, :2]
    upper, lower, _ = EYES[0]
    contour, inward, step = (lower, -1.0, -4.0) if lid == "lower" else (upper, 1.0, 4.0)
    middle = contour[len(contour) // 2]
    x, was_edge = int(round(source[middle, 0])), source[middle, 1]
    plate = np.full((340, 400, 3), 0.8, np.float32)
    ys = np.arange(plate.shape[0])[:, None]
    edge_row = np.interp(np.arange(plate.shape[1]), source[list(contour), 0], source[list(contour), 1])[None, :]
    depth = (ys - edge_row) * inward  # pixels into the opening from the lid's contour
    plate[(depth >= 0.0) & (depth < 2.0)] = 0.05  # the margin, just inside the contour
    edited = source.copy()
    edited[list(contour), 1] += step  # the lid 4 px over the eyeball
    alpha, colour = eye_layer(plate, source, edited)
    luma = colour[..., 1]
    new_margin = int(round(was_edge + step + inward))  # one pixel inside the lid's new contour
    assert alpha[new_margin, x] > 0.99 and luma[new_margin, x] < 0.3  # the margin moved with the lid
    beyond = int(round(was_edge + step + 4.0 * inward))
    assert luma[beyond, x] > 0.7  # and the eyeball beyond it stays the plate's


def _raised_lid_eye(plate_at: Callable[..., np.ndarray]) -> tuple[np.ndarray, np.ndarray, dict]:
    """The eye layer over a plate painted by ``plate_at(dx, dy, radius, below_lid)`` (offsets from the
    right iris's centre, pixels below the upper lid), with the right upper lid raised to bare the top of
    the iris; returns (alpha, colour, the eye's geometry)."""
    from ned_core.appearance.eyes import EYES, eye_layer

    face = template_fit([1])
    source = face.to_image(0, face.local_shape(0))[:, :2]
    upper, _, iris = EYES[0]
    source[list(upper[1:-1]), 1] += 4.0  # a lid that hides the top third of the iris
    centre = source[iris[0]]
    radius = float(np.mean(np.linalg.norm(source[list(iris[1:])] - centre, axis=1)))
    ys, xs = np.mgrid[0:340, 0:400].astype(np.float32)
    lid = (source[list(upper), 0], source[list(upper), 1])
    below_lid = ys - np.interp(xs, *lid)
    plate = plate_at(xs - centre[0], ys - centre[1], radius, below_lid).astype(np.float32)
    rise = radius + 3.0 - (centre[1] - np.interp(centre[0], *lid))  # the lid up past the iris's top
    edited = source.copy()
    edited[list(upper), 1] -= rise
    alpha, colour = eye_layer(plate, source, edited)
    return alpha, colour, {"cx": float(centre[0]), "cy": float(centre[1]), "r": radius, "rise": float(rise),
                           "outer": float(source[upper[0], 0]), "was_top": lambda x: float(np.interp(x, *lid))}


def test_a_bared_iris_is_the_plates_own_iris_mirrored() -> None:
    """The top of the iris a raised lid bares takes the texture of the plate's own iris below its centre
    (rings darkening toward the limbus), not one flat colour."""
    def plate_at(dx: np.ndarray, dy: np.ndarray, radius: float, below_lid: np.ndarray) -> np.ndarray:
        d = np.hypot(dx, dy)
        iris = 0.3 + 0.1 * np.cos(d * 1.3) - 0.1 * np.clip(d / radius - 0.6, 0.0, 1.0)
        return np.repeat(np.where(d <= radius, iris, 0.8)[..., None], 3, axis=-1)

    alpha, colour, eye = _raised_lid_eye(plate_at)
    x, cy = int(round(eye["cx"])), eye["cy"]
    drawn, want = [], []
    for y in range(int(np.ceil(cy - eye["r"] + 1.0)), int(np.floor(eye["was_top"](x) - 1.0))):
        assert alpha[y, x] > 0.99
        drawn.append(colour[y, x, 1])
        want.append(plate_at(np.float32(x - eye["cx"]), np.float32(cy - y), eye["r"], np.float32(9.0))[1])
    assert len(drawn) >= 3
    # The texture follows the mirrored rows (shaded under the lid: a factor, not a flat colour).
    assert np.corrcoef(drawn, want)[0, 1] > 0.9


def test_the_white_a_raised_lid_bares_darkens_toward_the_corner_as_the_plates_does() -> None:
    def plate_at(dx: np.ndarray, dy: np.ndarray, radius: float, below_lid: np.ndarray) -> np.ndarray:
        white = 0.9 - 0.6 * np.clip(-dx / 20.0, 0.0, 1.0)  # darker toward the outer corner (-x)
        return np.repeat(np.where(np.hypot(dx, dy) <= radius, 0.2, white)[..., None], 3, axis=-1)

    alpha, colour, eye = _raised_lid_eye(plate_at)
    near_iris = int(round(eye["cx"] - eye["r"] - 2.0))
    near_corner = int(round(eye["outer"] + 4.0))
    # Halfway up the band the lid bared, where both columns are drawn at the same depth under the lid.
    values = []
    for x in (near_iris, near_corner):
        y = int(round(eye["was_top"](x) - 0.5 * eye["rise"]))
        assert alpha[y, x] > 0.99
        values.append(colour[y, x, 1])
    assert values[1] < values[0] - 0.05


def test_a_raised_lid_bares_white_as_shaded_as_the_plates_white_under_its_lid() -> None:
    """The band a raised lid bares sits just under the lid, in its shadow: it is drawn as dark as the
    plate's own white is at the same depth under its lid, not as a pale ribbon."""
    def plate_at(dx: np.ndarray, dy: np.ndarray, radius: float, below_lid: np.ndarray) -> np.ndarray:
        # The white is in the lid's shadow over the four pixels just under the lid.
        white = np.where(below_lid < 4.0, 0.25, 0.9)
        return np.repeat(np.where(np.hypot(dx, dy) <= radius, 0.2, white)[..., None], 3, axis=-1)

    alpha, colour, eye = _raised_lid_eye(plate_at)
    x = int(round(eye["cx"] - eye["r"] - 2.0))
    y = int(round(eye["was_top"](x) - 0.5 * eye["rise"]))
    assert alpha[y, x] > 0.99
    assert colour[y, x, 1] < 0.6  # a fixed shade drew it at 0.75, near the plate's lit white
