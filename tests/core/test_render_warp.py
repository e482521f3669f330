"""The mesh-warp renderer: exact where nothing moves, exact shifts where everything moves, never tears."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from ned_core import render
from ned_core.errors import InvalidOptionError
from ned_core.render.base import FrameFace
from ned_core.render.warp import MeshWarpRenderer

SIZE = 512
LONDON = Path("/work/shared/data/london/neutral/001_03.jpg")


def grid_mesh(x0: float = 56.0, y0: float = 56.0, extent: float = 400.0, n: int = 21
              ) -> tuple[np.ndarray, np.ndarray]:
    """(n*n, 3) vertices of a square grid and its (F, 3) int32 triangles."""
    xs, ys = np.meshgrid(np.linspace(x0, x0 + extent, n), np.linspace(y0, y0 + extent, n))
    points = np.stack([xs.ravel(), ys.ravel(), np.zeros(n * n)], axis=1)
    triangles = []
    for i in range(n - 1):
        for j in range(n - 1):
            a = i * n + j
            triangles += [[a, a + 1, a + n + 1], [a, a + n + 1, a + n]]
    return points, np.array(triangles, np.int32)


def texture(channels: int = 4, height: int = SIZE, width: int = SIZE) -> np.ndarray:
    """Noise over ramps: every pixel differs from its neighbours, so a one-pixel shift shows."""
    rng = np.random.default_rng(7)
    ramp = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :, None]
    return (rng.random((height, width, channels), dtype=np.float32) + ramp).astype(np.float32)


def identity_grid(height: int = SIZE, width: int = SIZE) -> np.ndarray:
    xs, ys = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    return np.stack([xs, ys], axis=-1)


def outline(n: int = 21) -> np.ndarray:
    """Boolean (n*n,) mask of the grid's border vertices."""
    ring = np.zeros((n, n), bool)
    ring[0, :] = ring[-1, :] = ring[:, 0] = ring[:, -1] = True
    return ring.ravel()


def bump(points: np.ndarray, centre: tuple[float, float], amount: tuple[float, float], radius: float
         ) -> np.ndarray:
    """Vertices moved by ``amount`` at ``centre``, fading smoothly (Gaussian) with distance."""
    out = points.copy()
    r = np.hypot(points[:, 0] - centre[0], points[:, 1] - centre[1])
    out[:, :2] += np.outer(np.exp(-(r / radius) ** 2), amount)
    return out


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and np.array_equal(a.view(np.uint32), b.view(np.uint32))


def jacobian_det(stmap: np.ndarray) -> np.ndarray:
    dxdx = np.gradient(stmap[..., 0], axis=1)
    dxdy = np.gradient(stmap[..., 0], axis=0)
    dydx = np.gradient(stmap[..., 1], axis=1)
    dydy = np.gradient(stmap[..., 1], axis=0)
    return dxdx * dydy - dxdy * dydx


def test_registry_builds_the_warp_by_default() -> None:
    assert isinstance(render.get(), MeshWarpRenderer)
    assert isinstance(render.get("warp", falloff=0.2), MeshWarpRenderer)


def test_identity_edit_is_bit_identical_with_empty_matte() -> None:
    points, triangles = grid_mesh()
    image = texture()
    image[10, 10] = np.nan  # odd values must survive too
    out = MeshWarpRenderer().render(image, FrameFace(points, points.copy(), triangles))
    assert same_bits(out.pixels, image)
    assert out.pixels is not image
    assert not out.matte.any()
    assert np.array_equal(out.stmap, identity_grid())


def test_translated_interior_shifts_pixels_and_leaves_outside_alone() -> None:
    points, triangles = grid_mesh()
    shift = np.array([3.0, -2.0])
    edited = points.copy()
    edited[~outline(), :2] += shift
    image = texture()
    out = MeshWarpRenderer(falloff=0.1, smooth=0.01).render(image, FrameFace(points, edited, triangles))

    # Interior: further than the fall-off band and the smoothing from the fixed outline ring.
    inner = np.s_[180:330, 180:330]
    ys, xs = np.mgrid[inner]
    expected = image[ys - int(shift[1]), xs - int(shift[0])]
    np.testing.assert_allclose(out.pixels[inner], expected, atol=1e-5)
    np.testing.assert_allclose(out.stmap[inner], identity_grid()[inner] - shift, atol=1e-3)
    assert out.matte[inner].min() == 1.0

    hull = np.zeros((SIZE, SIZE), bool)
    hull[56:457, 56:457] = True
    assert same_bits(out.pixels[~hull], image[~hull])
    assert np.array_equal(out.stmap[~hull], identity_grid()[~hull])


def test_matte_covers_every_changed_pixel() -> None:
    points, triangles = grid_mesh()
    edited = bump(points, (256, 300), (0.0, -12.0), 60.0)
    image = texture()
    out = MeshWarpRenderer().render(image, FrameFace(points, edited, triangles))
    changed = np.any(out.pixels != image, axis=-1)
    moved = np.any(out.stmap != identity_grid(), axis=-1)
    assert changed.any()
    assert np.all(out.matte[changed | moved] > 0)
    assert out.matte.dtype == np.float32 and 0.0 <= out.matte.min() and out.matte.max() <= 1.0
    assert out.matte[0, 0] == 0.0 and out.matte[SIZE // 2, SIZE // 2] == 1.0


def test_smooth_edit_has_no_folds_or_seams() -> None:
    points, triangles = grid_mesh(n=11)  # large triangles: piecewise-affine kinks would be obvious
    edited = bump(points, (256, 256), (14.0, -10.0), 90.0)
    out = MeshWarpRenderer().render(texture(), FrameFace(points, edited, triangles))
    assert np.all(np.isfinite(out.pixels)) and np.all(np.isfinite(out.stmap))
    assert jacobian_det(out.stmap).min() > 0.3
    # A raw piecewise-affine map jumps in slope across each edge; smoothed, its second differences stay
    # tiny. Without smoothing the same edit shows the kinks (this is what the check measures).
    smooth = np.abs(np.diff(out.stmap, 2, axis=0)).max()
    raw = MeshWarpRenderer(smooth=0.0).render(texture(), FrameFace(points, edited, triangles))
    kinked = np.abs(np.diff(raw.stmap, 2, axis=0)).max()
    assert smooth < 0.05 < kinked


@pytest.mark.parametrize("threads", [1, 3])
def test_the_same_bits_whatever_opencvs_thread_count(threads: int) -> None:
    """A farm node's core count must not change a frame: pixels, STMap and matte."""
    points, triangles = grid_mesh(n=11)
    edited = bump(points, (256, 256), (14.0, -10.0), 90.0)
    before = cv2.getNumThreads()
    try:
        cv2.setNumThreads(2)
        reference = MeshWarpRenderer().render(texture(), FrameFace(points, edited, triangles))
        cv2.setNumThreads(threads)
        other = MeshWarpRenderer().render(texture(), FrameFace(points, edited, triangles))
    finally:
        cv2.setNumThreads(before)
    for a, b in ((reference.pixels, other.pixels), (reference.stmap, other.stmap), (reference.matte, other.matte)):
        assert same_bits(a, b)


def test_fall_off_reaches_zero_at_the_outline() -> None:
    points, triangles = grid_mesh()
    edited = points.copy()
    edited[~outline(), 1] -= 15.0  # a big motion right next to the fixed outline
    out = MeshWarpRenderer().render(texture(), FrameFace(points, edited, triangles))
    disp = np.hypot(*(out.stmap - identity_grid()).transpose(2, 0, 1))
    assert disp[56, 56:457].max() < 1e-3 and disp[456, 56:457].max() < 1e-3
    assert jacobian_det(out.stmap).min() > 0.3  # the band widens rather than folding


def test_folded_and_degenerate_triangles_stay_bounded() -> None:
    points, triangles = grid_mesh()
    edited = points.copy()
    centre = 10 * 21 + 10
    edited[centre, :2] += (45.0, 30.0)  # jumps over two rings of neighbours: its triangles fold
    a, b, c = triangles[40]
    edited[[a, b, c], :2] = edited[a, :2] + 5.0  # collapsed to a point
    edited[triangles[41][1], :2] = (edited[triangles[41][0], :2] + edited[triangles[41][2], :2]) / 2
    out = MeshWarpRenderer().render(texture(), FrameFace(points, edited, triangles))
    disp = np.hypot(*(out.stmap - identity_grid()).transpose(2, 0, 1))
    largest_vertex_move = np.hypot(*(points - edited)[:, :2].T).max()
    assert np.all(np.isfinite(out.pixels)) and np.all(np.isfinite(out.stmap))
    assert disp.max() <= largest_vertex_move + 1e-3
    assert out.pixels.min() >= texture().min() - 1e-5 and out.pixels.max() <= texture().max() + 1e-5


def test_hdr_and_negative_values_pass_through_unclipped() -> None:
    points, triangles = grid_mesh()
    image = (texture(3) - 0.5) * 200.0  # -100 .. +100, scene-linear style
    edited = bump(points, (256, 256), (6.0, 4.0), 80.0)
    out = MeshWarpRenderer().render(image, FrameFace(points, edited, triangles))
    moved = np.any(out.pixels != image, axis=-1)
    assert moved.any()
    assert out.pixels[moved].max() > 1.0 and out.pixels[moved].min() < 0.0
    # Bilinear sampling mixes neighbours: it cannot leave their range, and it never clips it.
    assert out.pixels.max() <= image.max() and out.pixels.min() >= image.min()
    assert same_bits(out.pixels[~moved], image[~moved])


@pytest.mark.parametrize("channels", [None, 1, 3, 4, 6])
def test_any_channel_count_is_warped_alike(channels: int | None) -> None:
    points, triangles = grid_mesh()
    edited = bump(points, (256, 256), (5.0, 0.0), 70.0)
    base = texture(1)[..., 0]
    image = base if channels is None else np.repeat(base[..., None], channels, axis=-1)
    image = np.ascontiguousarray(image)
    out = MeshWarpRenderer().render(image, FrameFace(points, edited, triangles))
    assert out.pixels.shape == image.shape and out.pixels.dtype == np.float32
    first = out.pixels if channels is None else out.pixels[..., 0]
    reference = MeshWarpRenderer().render(base, FrameFace(points, edited, triangles)).pixels
    # OpenCV's per-channel-count code paths round the last bit differently.
    np.testing.assert_allclose(first, reference, rtol=1e-6, atol=1e-6)
    if channels:
        assert all(np.array_equal(out.pixels[..., c], first) for c in range(channels))


@pytest.mark.parametrize("interpolation", ["linear", "cubic", "lanczos"])
def test_interpolations_reproduce_pixels_on_integer_shifts(interpolation: str) -> None:
    points, triangles = grid_mesh()
    edited = points.copy()
    edited[~outline(), :2] += (4.0, 1.0)
    image = texture()
    out = MeshWarpRenderer(interpolation=interpolation).render(image, FrameFace(points, edited, triangles))
    np.testing.assert_allclose(out.pixels[200:300, 200:300], image[199:299, 196:296], atol=1e-4)


def half_pixel_shift() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A grid mesh whose inside moves by (0.5, 0.5) px: the offset where a filter's blur is largest."""
    points, triangles = grid_mesh()
    edited = points.copy()
    edited[~outline(), :2] += 0.5
    return points, edited, triangles


def detail(pixels: np.ndarray) -> float:
    """RMS of the finest detail (the image minus its 1-px Gaussian blur) in the grid's middle."""
    grey = np.ascontiguousarray(pixels[150:350, 150:350].mean(axis=-1))
    return float(np.sqrt(np.mean((grey - cv2.GaussianBlur(grey, (0, 0), 1.0)) ** 2)))


def test_the_default_filter_keeps_fine_detail_that_bilinear_blurs() -> None:
    points, edited, triangles = half_pixel_shift()
    image = cv2.GaussianBlur(texture(3), (0, 0), 0.7)  # detail as fine as a sharp lens gives
    face = FrameFace(points, edited, triangles)
    default = MeshWarpRenderer().render(image, face).pixels
    linear = MeshWarpRenderer(interpolation="linear").render(image, face).pixels
    plate = detail(image)
    assert detail(default) > 0.8 * plate  # (0.87 measured)
    assert detail(linear) < 0.7 * plate  # (0.62: a half-pixel bilinear blend averages neighbours)


def test_clamp_keeps_a_sharp_filter_from_ringing_around_a_highlight() -> None:
    points, edited, triangles = half_pixel_shift()
    image = np.full((SIZE, SIZE, 3), 0.1, np.float32)
    image[240:243, 250:253] = 500.0  # a specular highlight in scene-linear
    face = FrameFace(points, edited, triangles)
    for interpolation in ("cubic", "lanczos"):
        free = MeshWarpRenderer(interpolation=interpolation, clamp=False).render(image, face).pixels
        kept = MeshWarpRenderer(interpolation=interpolation).render(image, face).pixels
        assert free.min() < 0.0  # the unclamped filter's negative lobes ring into negatives
        assert kept.min() >= 0.1 and kept.max() <= 500.0
        ring = (slice(230, 255), slice(240, 265))
        assert np.count_nonzero(kept[ring] < 0.1 - 1e-6) == 0


def test_face_partly_outside_the_frame() -> None:
    points, triangles = grid_mesh(x0=-200.0, y0=300.0)
    edited = bump(points, (0.0, 500.0), (8.0, -8.0), 80.0)
    image = texture()
    out = MeshWarpRenderer().render(image, FrameFace(points, edited, triangles))
    assert np.all(np.isfinite(out.pixels))
    assert np.any(out.pixels != image)
    assert same_bits(out.pixels[:250], image[:250])


def test_face_entirely_outside_or_broken_passes_through() -> None:
    points, triangles = grid_mesh(x0=2000.0)
    image = texture()
    edited = bump(points, (2200.0, 256.0), (9.0, 0.0), 80.0)
    out = MeshWarpRenderer().render(image, FrameFace(points, edited, triangles))
    assert same_bits(out.pixels, image) and not out.matte.any()
    points, triangles = grid_mesh()
    broken = points.copy()
    broken[:, 0] = np.nan
    out = MeshWarpRenderer().render(image, FrameFace(points, broken, triangles))
    assert same_bits(out.pixels, image) and not out.matte.any()


@pytest.mark.parametrize("options", [{"falloff": 0}, {"smooth": -1}, {"matte_feather": float("nan")},
                                     {"interpolation": "nearest"}, {"clamp": "yes"},
                                     {"field_size": -1}])
def test_bad_options_are_named(options: dict) -> None:
    with pytest.raises(InvalidOptionError) as info:
        MeshWarpRenderer(**options)
    assert info.value.field == next(iter(options))


def test_bad_face_and_image_raise() -> None:
    points, triangles = grid_mesh()
    renderer = MeshWarpRenderer()
    with pytest.raises(InvalidOptionError, match="triangles"):
        renderer.render(texture(), FrameFace(points, points, triangles + 1000))
    with pytest.raises(InvalidOptionError, match="source/edited"):
        renderer.render(texture(), FrameFace(points, points[:-1], triangles))
    with pytest.raises(InvalidOptionError, match="float"):
        renderer.render(np.zeros((8, 8, 3), np.uint8), FrameFace(points, points, triangles))


@pytest.mark.slow
def test_real_face_lip_corners_up_is_seamless() -> None:
    """MediaPipe mesh of a real photo, lip corners raised by 6% of the eye-corner distance."""
    mp = pytest.importorskip("mediapipe")
    cv2 = pytest.importorskip("cv2")
    if not LONDON.exists():
        pytest.skip(f"{LONDON} not present")
    bgr = cv2.imread(str(LONDON))
    height, width = bgr.shape[:2]
    with mp.solutions.face_mesh.FaceMesh(static_image_mode=True, refine_landmarks=True,
                                         max_num_faces=1) as mesh:
        found = mesh.process(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)).multi_face_landmarks
    assert found
    points = np.array([[p.x * width, p.y * height, p.z * width] for p in found[0].landmark])
    triangles = delaunay(points[:, :2], width, height)
    eye = np.linalg.norm(points[263, :2] - points[33, :2])
    edited = points.copy()
    for corner in (61, 291):
        edited = bump(edited, tuple(points[corner, :2]), (0.0, -0.06 * eye), 0.18 * eye)

    image = bgr[..., ::-1].astype(np.float32) / 255.0
    out = MeshWarpRenderer().render(image, FrameFace(points, edited, triangles))
    grid = identity_grid(height, width)
    assert np.all(np.isfinite(out.pixels))
    assert jacobian_det(out.stmap).min() > 0.5
    assert np.abs(np.diff(out.stmap, 2, axis=0)).max() < 0.1
    assert np.abs(np.diff(out.stmap, 2, axis=1)).max() < 0.1
    lifted = out.stmap[int(points[61, 1]) - 5, int(points[61, 0])] - grid[int(points[61, 1]) - 5,
                                                                          int(points[61, 0])]
    assert lifted[1] > 0.5 * 0.06 * eye  # the pixel above the corner samples from below: corner went up
    outside = out.matte == 0
    assert same_bits(out.pixels[outside], image[outside])


def delaunay(points: np.ndarray, width: int, height: int) -> np.ndarray:
    """(F, 3) int32 vertex indices of the Delaunay triangulation of ``points`` (cv2.Subdiv2D)."""
    import cv2

    subdiv = cv2.Subdiv2D((-1, -1, width + 2, height + 2))
    for x, y in points:
        subdiv.insert((float(x), float(y)))
    corners = subdiv.getTriangleList().reshape(-1, 2)
    gap = ((corners[:, None, :] - points[None, :, :]) ** 2).sum(-1)
    index, close = gap.argmin(axis=1).reshape(-1, 3), (gap.min(axis=1) < 1e-3).reshape(-1, 3)
    return index[close.all(axis=1)].astype(np.int32)  # drops the triangles on Subdiv2D's outer corners


def test_coarse_field_for_large_faces_matches_the_full_size_field() -> None:
    points, triangles = grid_mesh(x0=40.0, y0=40.0, extent=900.0)
    edited = bump(points, (490.0, 560.0), (10.0, -14.0), 160.0)
    image = texture(3, 980, 980)
    face = FrameFace(points, edited, triangles)
    coarse = MeshWarpRenderer(field_size=300).render(image, face)  # 900 px face: a 3x coarser grid
    full = MeshWarpRenderer(field_size=0).render(image, face)
    assert np.abs(coarse.stmap - full.stmap).max() < 0.05
    assert jacobian_det(coarse.stmap).min() > 0.3
    changed = np.any(coarse.pixels != image, axis=-1)
    assert np.all(coarse.matte[changed] > 0)
    hull = np.zeros(image.shape[:2], bool)
    hull[40:941, 40:941] = True
    assert same_bits(coarse.pixels[~hull], image[~hull])
    same = MeshWarpRenderer(field_size=300).render(image, FrameFace(points, points.copy(), triangles))
    assert same_bits(same.pixels, image) and not same.matte.any()
