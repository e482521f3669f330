"""The matte compositor: the plate's own bits wherever the matte is 0, and a matte that never grows."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ned_core import composite
from ned_core.composite.matte_blend import MatteCompositor
from ned_core.errors import InvalidOptionError
from ned_core.render.base import FrameFace, RenderOutput
from ned_core.render.warp import MeshWarpRenderer

H, W = 96, 128


def plate(channels: int = 4) -> np.ndarray:
    rng = np.random.default_rng(3)
    pixels = (rng.standard_normal((H, W, channels)) * 4.0).astype(np.float32)  # HDR, negatives
    pixels[0, 0] = np.nan
    pixels[0, 1] = np.inf
    pixels[0, 2] = -0.0
    return pixels


def disc_matte(radius: float = 30.0, soft: float = 8.0) -> np.ndarray:
    ys, xs = np.mgrid[:H, :W]
    r = np.hypot(xs - W / 2, ys - H / 2)
    return np.clip((radius + soft - r) / soft, 0.0, 1.0).astype(np.float32)


def rendered(base: np.ndarray, matte: np.ndarray) -> RenderOutput:
    """A face render honouring the renderer contract: it differs from the plate only inside its matte."""
    face = base.copy()
    face[matte > 0] = 7.5
    return RenderOutput(pixels=face, matte=matte)


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and np.array_equal(a.view(np.uint32), b.view(np.uint32))


def test_registry_builds_the_matte_compositor_by_default() -> None:
    assert isinstance(composite.get(), MatteCompositor)
    assert isinstance(composite.get("matte", feather=0), MatteCompositor)


@pytest.mark.parametrize("feather", [0.0, 1.0, 3.5])
def test_plate_bits_kept_wherever_the_matte_is_zero(feather: float) -> None:
    base = plate()
    out, matte = MatteCompositor(feather=feather).composite(base, rendered(base, disc_matte()))
    assert out.dtype == np.float32 and matte.dtype == np.float32 and matte.shape == (H, W)
    assert same_bits(out[matte == 0], base[matte == 0])
    assert (matte > 0).any() and not same_bits(out, base)


def test_blend_is_plate_plus_matte_times_difference_in_every_channel() -> None:
    base = plate()
    face = rendered(base, disc_matte())
    out, matte = MatteCompositor(feather=0).composite(base, face)
    assert np.array_equal(matte, face.matte)
    full = matte >= 1
    assert same_bits(out[full], face.pixels[full])  # alpha included: all four channels
    part = (matte > 0) & (matte < 1)
    with np.errstate(invalid="ignore"):
        expected = base + matte[..., None] * (face.pixels - base)
    np.testing.assert_allclose(out[part], expected[part], rtol=1e-6)


def test_user_mask_multiplies_and_zero_mask_gives_the_plate() -> None:
    base = plate(3)
    face = rendered(base, disc_matte())
    out, matte = MatteCompositor().composite(base, face, np.zeros((H, W), np.float32))
    assert not matte.any() and same_bits(out, base)

    half = np.full((H, W, 1), 0.5, np.float32)  # (H, W, 1) masks, as image readers give them
    _, matte = MatteCompositor(feather=0).composite(base, face, half)
    np.testing.assert_allclose(matte, face.matte * 0.5)


def test_user_mask_is_clipped_and_nan_means_zero() -> None:
    base = plate()
    face = rendered(base, np.ones((H, W), np.float32))
    mask = np.full((H, W), 3.0, np.float32)
    mask[:, :10] = np.nan
    mask[:, 10:20] = -1.0
    out, matte = MatteCompositor(feather=0).composite(base, face, mask)
    assert matte.max() == 1.0 and not matte[:, :20].any()
    assert same_bits(out[:, :20], base[:, :20])


def test_feather_softens_a_hard_user_mask_inward_only() -> None:
    base = plate()
    face = rendered(base, np.ones((H, W), np.float32))
    mask = np.zeros((H, W), np.float32)
    mask[:, W // 2:] = 1.0
    _, matte = MatteCompositor(feather=2.0).composite(base, face, mask)
    assert not matte[:, :W // 2].any()  # never past the mask's edge
    edge = matte[H // 2, W // 2:W // 2 + 20]
    assert edge[0] < 0.01 and 0.1 < edge[6] < 0.9 and edge[-1] == 1.0  # solid stays exactly solid
    assert np.all(np.diff(edge) >= 0)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2 ** 32 - 1), feather=st.floats(0.0, 4.0),
       use_mask=st.booleans())
def test_feathered_matte_stays_inside_render_matte_and_user_mask(seed: int, feather: float,
                                                                  use_mask: bool) -> None:
    """The guarantee: matte_out > 0 only where rendered.matte > 0 and user_mask > 0, matte_out in [0, 1],
    and out == plate bit for bit wherever matte_out == 0."""
    rng = np.random.default_rng(seed)
    blobs = (rng.random((H // 8, W // 8)) > 0.6).astype(np.float32)
    render_matte = np.kron(blobs, np.ones((8, 8), np.float32)) * rng.random((H, W), dtype=np.float32)
    mask = (rng.random((H, W)) > 0.3).astype(np.float32) if use_mask else None
    base = plate()
    out, matte = MatteCompositor(feather=feather).composite(base, rendered(base, render_matte), mask)
    allowed = render_matte > 0
    if mask is not None:
        allowed &= mask > 0
    assert not matte[~allowed].any()
    assert matte.min() >= 0.0 and matte.max() <= 1.0
    assert same_bits(out[matte == 0], base[matte == 0])


def test_renderer_and_compositor_together_keep_untouched_pixels() -> None:
    xs, ys = np.meshgrid(np.linspace(24, 104, 9), np.linspace(16, 80, 9))
    points = np.stack([xs.ravel(), ys.ravel(), np.zeros(81)], axis=1)
    triangles = np.array([[i * 9 + j, i * 9 + j + 1, i * 9 + j + 10] for i in range(8) for j in range(8)]
                         + [[i * 9 + j, i * 9 + j + 10, i * 9 + j + 9] for i in range(8) for j in range(8)],
                         np.int32)
    base = plate()
    base[0, :3] = 1.0  # keep the warp's own input finite; odd values are covered above
    identity = MeshWarpRenderer().render(base, FrameFace(points, points.copy(), triangles))
    out, matte = MatteCompositor().composite(base, identity)
    assert same_bits(out, base) and not matte.any()

    edited = points.copy()
    edited[40, :2] += (3.0, -3.0)
    warped = MeshWarpRenderer().render(base, FrameFace(points, edited, triangles))
    out, matte = MatteCompositor().composite(base, warped)
    assert same_bits(out[matte == 0], base[matte == 0])
    changed = np.any(warped.pixels != base, axis=-1)
    np.testing.assert_array_equal(out[changed & (matte >= 1)], warped.pixels[changed & (matte >= 1)])


def test_bad_inputs_name_the_field() -> None:
    base = plate()
    face = rendered(base, disc_matte())
    with pytest.raises(InvalidOptionError) as info:
        MatteCompositor().composite(base, face, np.ones((H, W + 1), np.float32))
    assert info.value.field == "mask" and "plate" in info.value.message
    with pytest.raises(InvalidOptionError) as info:
        MatteCompositor().composite(base, RenderOutput(base[:, :-1], disc_matte()))
    assert info.value.field == "render"
    with pytest.raises(InvalidOptionError) as info:
        MatteCompositor(feather=-1)
    assert info.value.field == "feather"
