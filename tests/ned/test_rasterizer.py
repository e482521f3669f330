"""Rasterizer: coverage, z-buffer, barycentric interpolation, gradients and NMFC facing mask."""

from __future__ import annotations

import numpy as np
import torch

from ned_core.ned.rasterizer import interpolate, ndc_to_pixels, rasterize, render_nmfc, vertex_normals

# A right triangle whose legs run along pixel centres 0.5 .. 8.5: it covers centres with i + j <= 8.
TRI = torch.tensor([[0.5, 0.5, 1.0], [8.5, 0.5, 1.0], [0.5, 8.5, 1.0]])
FACE = torch.tensor([[0, 1, 2]])


def test_single_triangle_covers_the_expected_pixels():
    frags = rasterize(TRI, FACE, 12, 12, backend="torch")
    rows, cols = np.mgrid[0:12, 0:12]
    assert np.array_equal(frags.mask.numpy(), (rows + cols) <= 8)
    assert frags.pix_to_face[frags.mask].eq(0).all() and frags.pix_to_face[~frags.mask].eq(-1).all()
    assert torch.allclose(frags.zbuf[frags.mask], torch.ones(45))


def test_interpolation_is_barycentric():
    frags = rasterize(TRI, FACE, 12, 12, backend="torch")
    colors = torch.eye(3)  # red, green, blue corners
    img = interpolate(frags, FACE, colors)
    assert torch.allclose(img[0, 0], torch.tensor([1.0, 0.0, 0.0]), atol=1e-6)
    assert torch.allclose(img[0, 8], torch.tensor([0.0, 1.0, 0.0]), atol=1e-6)
    assert torch.allclose(img[4, 4], torch.tensor([0.0, 0.5, 0.5]), atol=1e-6)
    assert torch.allclose(img[frags.mask].sum(dim=1), torch.ones(45))
    # A linear attribute (the x coordinate) comes back exactly at each pixel centre.
    x = interpolate(frags, FACE, TRI[:, :1])[..., 0]
    cols = torch.arange(12).float()[None].expand(12, -1) + 0.5
    assert torch.allclose(x[frags.mask], cols[frags.mask], atol=1e-5)
    assert torch.all(img[~frags.mask] == 0)


def test_nearest_face_wins_whatever_the_order():
    near = torch.tensor([[2.0, 2.0, 0.5], [10.0, 2.0, 0.5], [2.0, 10.0, 0.5]])
    far = torch.tensor([[0.0, 0.0, 3.0], [12.0, 0.0, 3.0], [0.0, 12.0, 3.0]])
    for first, second in ((near, far), (far, near)):
        verts = torch.cat([first, second])
        faces = torch.tensor([[0, 1, 2], [3, 4, 5]])
        frags = rasterize(verts, faces, 12, 12, backend="torch")
        near_id = 0 if first is near else 1
        assert frags.pix_to_face[4, 4] == near_id and frags.zbuf[4, 4] == 0.5
        assert frags.pix_to_face[0, 11] == 1 - near_id  # only the far face reaches this corner


def _brute_force(verts: np.ndarray, faces: np.ndarray, h: int, w: int) -> np.ndarray:
    out = np.full((h, w), -1)
    depth = np.full((h, w), np.inf)
    for i in range(h):
        for j in range(w):
            p = np.array([j + 0.5, i + 0.5])
            for f, (a, b, c) in enumerate(faces):
                m = np.array([verts[b, :2] - verts[a, :2], verts[c, :2] - verts[a, :2]]).T
                if abs(np.linalg.det(m)) < 1e-12:
                    continue
                l1, l2 = np.linalg.solve(m, p - verts[a, :2])
                bary = np.array([1 - l1 - l2, l1, l2])
                if bary.min() < -1e-9:
                    continue
                z = bary @ verts[[a, b, c], 2]
                if z < depth[i, j]:
                    depth[i, j], out[i, j] = z, f
    return out


def test_matches_a_brute_force_rasterizer():
    rng = np.random.default_rng(3)
    verts = np.concatenate([rng.uniform(-2, 22, size=(30, 2)), rng.uniform(0, 5, size=(30, 1))], axis=1)
    faces = rng.integers(0, 30, size=(25, 3))
    faces = faces[(faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2]) & (faces[:, 0] != faces[:, 2])]
    frags = rasterize(torch.from_numpy(verts), torch.from_numpy(faces), 20, 20, backend="torch")
    expected = _brute_force(verts, faces, 20, 20)
    agree = frags.pix_to_face.numpy() == expected
    # Pixel centres exactly on a shared edge may go either way; random vertices make that vanishingly rare.
    assert agree.mean() > 0.995 and (expected >= 0).sum() > 100


def test_interpolated_attributes_carry_gradients_to_vertices():
    verts = TRI.clone().requires_grad_(True)
    frags = rasterize(verts, FACE, 12, 12, backend="torch")
    interpolate(frags, FACE, torch.eye(3))[..., 1].sum().backward()
    assert verts.grad is not None and verts.grad.abs().sum() > 0


def test_nmfc_shows_only_faces_turned_to_the_viewer():
    # Pixel space has y down and z away from the viewer: this winding faces the viewer (normal z < 0).
    facing = torch.tensor([[[0.5, 0.5, 1.0], [0.5, 8.5, 1.0], [8.5, 0.5, 1.0]]])
    colors = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    image, mask = render_nmfc(facing[0], FACE, colors, 12, 12, backend="torch")
    assert mask.sum() == 45 and torch.allclose(image[0, 0], colors[0], atol=1e-6)
    assert vertex_normals(facing[0], FACE)[0, 2] < 0
    image, mask = render_nmfc(facing[0], FACE[:, [0, 2, 1]], colors, 12, 12, backend="torch")
    assert mask.sum() == 0 and image.abs().sum() == 0


def test_ndc_to_pixels_spans_the_image():
    v = torch.tensor([[-1.0, -1.0, 0.2], [1.0, 1.0, -0.2], [0.0, 0.0, 0.0]])
    px = ndc_to_pixels(v, 224)
    assert torch.allclose(px, torch.tensor([[0.0, 0.0, 22.4], [224.0, 224.0, -22.4], [112.0, 112.0, 0.0]]))
