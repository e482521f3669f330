"""A small mesh rasterizer in plain PyTorch, for NED's NMFC conditioning images.

Orthographic, one face per pixel, hard z-buffer. Visibility is found without gradients, vectorised
over each triangle's pixel bounding box (faces are bucketed by box size so small faces cost little);
the barycentric weights of the visible face are then recomputed with autograd, so interpolated
attributes are differentiable with respect to the vertices. When pytorch3d is importable it finds
visibility instead (NED rendered with pytorch3d 0.5, blur 0, 1 face per pixel).

Conventions: vertices are in pixel units, x right, y down, pixel (row i, col j) has its centre at
(j + 0.5, i + 0.5); smaller z is nearer the viewer (DECA's projected vertices, see ``ndc_to_pixels``).

Must not import zmq, msgpack or the engine.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

import torch

_MAX_CANDIDATES = 1 << 20
"""Upper bound on (face, pixel) pairs tested at once, to bound memory on large faces."""


@dataclass
class Fragments:
    """What each pixel sees.

    pix_to_face: (H, W) int64 face index, -1 where no face covers the pixel.
    bary: (H, W, 3) barycentric weights of the pixel centre in that face (0 where empty); carries
    gradients to the vertices.
    zbuf: (H, W) interpolated z of the visible face, -1 where empty.
    """

    pix_to_face: torch.Tensor
    bary: torch.Tensor
    zbuf: torch.Tensor

    @property
    def mask(self) -> torch.Tensor:
        """(H, W) bool, True where a face covers the pixel."""
        return self.pix_to_face >= 0


def ndc_to_pixels(verts: torch.Tensor, size: int) -> torch.Tensor:
    """DECA's projected vertices ([-1, 1], x right, y down, z away from the viewer) -> pixel units.

    All three axes scale by ``size / 2`` so normals computed from the result keep their direction.
    """
    offset = verts.new_tensor([1.0, 1.0, 0.0])
    return (verts + offset) * (size / 2.0)


def _edge_weights(tri: torch.Tensor, px: torch.Tensor, py: torch.Tensor) -> torch.Tensor:
    """Barycentric weights (..., 3) of points (px, py) in triangles tri (..., 3, 3)."""
    x0, y0 = tri[..., 0, 0], tri[..., 0, 1]
    x1, y1 = tri[..., 1, 0], tri[..., 1, 1]
    x2, y2 = tri[..., 2, 0], tri[..., 2, 1]
    area = (x1 - x0) * (y2 - y0) - (x2 - x0) * (y1 - y0)
    w0 = ((x1 - px) * (y2 - py) - (x2 - px) * (y1 - py)) / area
    w1 = ((x2 - px) * (y0 - py) - (x0 - px) * (y2 - py)) / area
    return torch.stack([w0, w1, 1.0 - w0 - w1], dim=-1)


@torch.no_grad()
def _visible_faces_torch(verts: torch.Tensor, faces: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(H*W,) index of the nearest face covering each pixel centre, -1 where none."""
    tri = verts[faces]  # (F, 3, 3)
    x, y = tri[..., 0], tri[..., 1]
    area = (x[:, 1] - x[:, 0]) * (y[:, 2] - y[:, 0]) - (x[:, 2] - x[:, 0]) * (y[:, 1] - y[:, 0])
    # Pixel columns j whose centre j + 0.5 lies within the face's x extent (same for rows).
    col0 = torch.ceil(x.min(dim=1).values - 0.5).clamp(min=0)
    col1 = torch.floor(x.max(dim=1).values - 0.5).clamp(max=width - 1)
    row0 = torch.ceil(y.min(dim=1).values - 0.5).clamp(min=0)
    row1 = torch.floor(y.max(dim=1).values - 0.5).clamp(max=height - 1)
    keep = (area.abs() > 1e-12) & (col1 >= col0) & (row1 >= row0) & torch.isfinite(area)
    face_ids = keep.nonzero()[:, 0]
    box_w = (col1 - col0 + 1)[face_ids].long()
    box_h = (row1 - row0 + 1)[face_ids].long()
    side = torch.maximum(box_w, box_h)
    bucket = torch.ceil(torch.log2(side.float())).long()  # faces whose box fits 2**b x 2**b

    pix_all, z_all, face_all = [], [], []
    for b in bucket.unique().tolist():
        k = 1 << b
        members = (bucket == b).nonzero()[:, 0]
        dy, dx = torch.meshgrid(torch.arange(k), torch.arange(k), indexing="ij")
        dy, dx = dy.reshape(-1), dx.reshape(-1)
        for chunk in members.split(max(1, _MAX_CANDIDATES // (k * k))):
            f = face_ids[chunk]
            valid = (dx[None] < box_w[chunk, None]) & (dy[None] < box_h[chunk, None])
            cols = col0[f, None].long() + dx[None]
            rows = row0[f, None].long() + dy[None]
            t = tri[f][:, None]  # (n, 1, 3, 3)
            w = _edge_weights(t, cols + 0.5, rows + 0.5)
            inside = valid & (w >= -1e-7).all(dim=-1)
            n_idx, c_idx = inside.nonzero(as_tuple=True)
            z = (w[n_idx, c_idx] * tri[f[n_idx], :, 2]).sum(dim=-1)
            pix_all.append(rows[n_idx, c_idx] * width + cols[n_idx, c_idx])
            z_all.append(z)
            face_all.append(f[n_idx])

    n_pix = height * width
    pix_to_face = torch.full((n_pix,), -1, dtype=torch.long)
    if not pix_all:
        return pix_to_face
    pix, z, face = torch.cat(pix_all), torch.cat(z_all), torch.cat(face_all)
    zmin = torch.full((n_pix,), float("inf"), dtype=z.dtype).scatter_reduce(0, pix, z, "amin")
    nearest = z <= zmin[pix]
    n_faces = faces.shape[0]
    # Exact depth ties (shared edges of coplanar faces) go to the lowest face index, deterministically.
    winner = torch.full((n_pix,), n_faces, dtype=torch.long).scatter_reduce(
        0, pix[nearest], face[nearest], "amin")
    covered = winner < n_faces
    pix_to_face[covered] = winner[covered]
    return pix_to_face


@torch.no_grad()
def _visible_faces_pytorch3d(verts: torch.Tensor, faces: torch.Tensor, size: int) -> torch.Tensor:
    from pytorch3d.renderer.mesh import rasterize_meshes
    from pytorch3d.structures import Meshes

    # pytorch3d's NDC: +x left, +y up, pixel centre j at 1 - (2j + 1) / size; it needs z > 0.
    ndc = torch.stack([1.0 - 2.0 * verts[:, 0] / size, 1.0 - 2.0 * verts[:, 1] / size,
                       verts[:, 2] - verts[:, 2].min() + 1.0], dim=1)
    mesh = Meshes(verts=[ndc.float()], faces=[faces.long()])
    pix_to_face, _, _, _ = rasterize_meshes(mesh, image_size=size, blur_radius=0.0, faces_per_pixel=1,
                                            perspective_correct=False)
    return pix_to_face[0, :, :, 0].reshape(-1).long().cpu()


def has_pytorch3d() -> bool:
    """Whether pytorch3d is importable (then ``rasterize`` uses it for visibility on square images)."""
    return importlib.util.find_spec("pytorch3d") is not None


def rasterize(verts: torch.Tensor, faces: torch.Tensor, height: int, width: int,
              backend: str = "auto") -> Fragments:
    """Find the nearest face at every pixel centre and its barycentric weights.

    Parameters
    ----------
    verts:
        (V, 3) vertices in pixel units (see the module docstring); may require grad.
    faces:
        (F, 3) int vertex indices.
    height, width:
        Image size.
    backend:
        ``"torch"``, ``"pytorch3d"`` or ``"auto"`` (pytorch3d when importable and the image is square).
    """
    faces = faces.long().to(verts.device)
    if backend not in ("auto", "torch", "pytorch3d"):
        raise ValueError(f"unknown rasterizer backend {backend!r}")
    use_p3d = backend == "pytorch3d" or (backend == "auto" and height == width and has_pytorch3d())
    v = verts.detach().cpu().double()
    if use_p3d:
        flat = _visible_faces_pytorch3d(v, faces.cpu(), height)
    else:
        flat = _visible_faces_torch(v, faces.cpu(), height, width)
    pix_to_face = flat.reshape(height, width).to(verts.device)

    covered = pix_to_face >= 0
    rows, cols = covered.nonzero(as_tuple=True)
    tri = verts[faces[pix_to_face[rows, cols]]]  # with grad
    w = _edge_weights(tri, cols.to(verts.dtype) + 0.5, rows.to(verts.dtype) + 0.5)
    bary = verts.new_zeros(height, width, 3).index_put((rows, cols), w)
    zbuf = verts.new_full((height, width), -1.0).index_put((rows, cols), (w * tri[..., 2]).sum(-1))
    return Fragments(pix_to_face=pix_to_face, bary=bary, zbuf=zbuf)


def interpolate(fragments: Fragments, faces: torch.Tensor, attributes: torch.Tensor) -> torch.Tensor:
    """Barycentric interpolation of per-vertex ``attributes`` (V, C) -> (H, W, C), zero where empty."""
    face_idx = fragments.pix_to_face.clamp(min=0)
    corner = attributes[faces.long().to(attributes.device)[face_idx]]  # (H, W, 3, C)
    values = (fragments.bary[..., None] * corner).sum(dim=-2)
    return values * fragments.mask[..., None]


def vertex_normals(verts: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Unit vertex normals (V, 3): the sum of adjacent face normals weighted by face area."""
    faces = faces.long()
    v0, v1, v2 = verts[faces[:, 0]], verts[faces[:, 1]], verts[faces[:, 2]]
    face_n = torch.linalg.cross(v1 - v0, v2 - v0)
    normals = torch.zeros_like(verts).index_add(0, faces.reshape(-1), face_n.repeat_interleave(3, dim=0))
    return torch.nn.functional.normalize(normals, dim=-1, eps=1e-12)


def render_nmfc(verts: torch.Tensor, faces: torch.Tensor, colors: torch.Tensor, height: int, width: int,
                facing_threshold: float = 0.15, backend: str = "auto") -> tuple[torch.Tensor, torch.Tensor]:
    """Render an NMFC image as NED does: vertex colours on the visible, camera-facing surface.

    Parameters
    ----------
    verts:
        (V, 3) projected vertices in pixel units (``ndc_to_pixels`` of DECA's ``trans_verts``).
    faces:
        (F, 3) FLAME triangles.
    colors:
        (V, 3) NMFC colours (``flame.nmfc_vertex_colors(v_template)``).
    facing_threshold:
        Pixels whose interpolated vertex-normal z is not below this are cleared (DECA's ``pos_mask``:
        normals point toward the viewer when z < 0).

    Returns
    -------
    image (H, W, 3) in [0, 1] (black outside the face), mask (H, W) float in {0, 1}.
    """
    fragments = rasterize(verts, faces, height, width, backend=backend)
    normal_z = interpolate(fragments, faces, vertex_normals(verts, faces))[..., 2]
    mask = (fragments.mask & (normal_z < facing_threshold)).to(colors.dtype)
    image = interpolate(fragments, faces, colors.to(verts.dtype)).to(colors.dtype) * mask[..., None]
    return image, mask
