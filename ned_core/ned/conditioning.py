"""The neural renderer's per-frame conditioning, drawn in NED's aligned 256-px face space.

Each frame of the renderer's input holds 10 channels: the NMFC image (3), the eye-gaze image (3), the
shaded-shape image (3) and the face mask (1), all in the *aligned* space: the frame's tracked 68
points mapped onto the 68-point template by a similarity (NED's ``align.py``). What is drawn:

* **NMFC**: the edited mesh rasterised with each vertex coloured by its FLAME-template position
  normalised to [0, 1], only where the surface faces the camera (normal z < 0.15), as NED.
* **shape**: grey (180/255) Lambertian shading of the edited mesh under DECA's five fixed lights
  (intensity 1.7), clipped to [0, 1]. NED shades DECA's *detail* normals, which need DECA's detail
  decoder and UV assets; we shade the coarse mesh's interpolated vertex normals instead.
* **eye-gaze**: black with a filled red disk at each pupil, of radius half the mean eyelid opening.
  The edited eyelids are the tracked ones moved by the edit (each eyelid point follows the mesh
  vertex nearest to it on a reference frame); the pupil moves with its eye's centre (NED's rule).
* **mask**: the source face's outline (jaw line and raised brows, ``landmarks.face_outline``),
  standing in for NED's face-parsing mask.

NED rasterises at DECA's 224-px crop and warps the images twice (Lanczos); here the mesh is projected
straight into the aligned space, so nothing is resampled. Inputs are numpy; the rasterizer runs in
PyTorch (pytorch3d finds visibility where it is installed).

Must not import zmq, msgpack or the engine.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

from ned_core.ned import landmarks
from ned_core.ned.rasterizer import interpolate, rasterize, vertex_normals

LIGHT_DIRECTIONS = np.array([[-1, 1, 1], [1, 1, 1], [-1, -1, 1], [1, -1, 1], [0, 0, 1]], dtype=np.float64)
"""DECA's shape-rendering lights, in FLAME's frame (y up, z toward the viewer)."""
LIGHT_INTENSITY = 1.7
SHAPE_ALBEDO = 180.0 / 255.0
FACING_THRESHOLD = 0.15
_EYE_POINTS = list(range(36, 48))


@dataclass
class FrameGeometry:
    """One frame's face in analysed-frame pixels (x right, y down, z toward the viewer).

    source / edited: (N, 3) projected vertices before and after the edit; points68: (68, 2) tracked
    landmarks of the source; pupils: (2, 2) tracked pupil centres (subject's right eye first) or None.
    """

    source: np.ndarray
    edited: np.ndarray
    points68: np.ndarray
    pupils: np.ndarray | None = None


@dataclass
class Conditioning:
    """One frame's conditioning images (S, S, C) float32 in [0, 1] and its alignment (2x3, frame -> S)."""

    nmfc: np.ndarray
    eye: np.ndarray
    shape: np.ndarray
    mask: np.ndarray
    align: np.ndarray

    def channels(self) -> np.ndarray:
        """(10, S, S) float32: NMFC, eye, shape, mask, as the renderer reads one frame."""
        return np.concatenate([self.nmfc, self.eye, self.shape, self.mask[..., None]], axis=2).transpose(
            2, 0, 1).astype(np.float32)


def pupil_from_image(gray: np.ndarray, eye: np.ndarray) -> np.ndarray:
    """NED's pupil: the inverse-intensity-weighted centre of the (H, W) uint8 pixels inside an eye's 6 points."""
    eye = np.asarray(eye, np.float64)
    x0, y0 = np.floor(eye.min(axis=0)).astype(int)
    x1, y1 = np.ceil(eye.max(axis=0)).astype(int) + 1
    h, w = gray.shape[:2]
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if x1 <= x0 or y1 <= y0:
        return eye.mean(axis=0)
    poly = np.zeros((y1 - y0, x1 - x0), np.uint8)
    cv2.fillPoly(poly, [np.round(eye - [x0, y0]).astype(np.int32)], 1)
    weights = (255.0 - gray[y0:y1, x0:x1].astype(np.float64)) * poly
    if weights.sum() <= 0:
        return eye.mean(axis=0)
    ys, xs = np.mgrid[y0:y1, x0:x1]
    return np.array([(weights * xs).sum(), (weights * ys).sum()]) / weights.sum()


class Conditioner:
    """Draws the renderer's conditioning for frames of one mesh topology.

    Parameters
    ----------
    faces:
        (F, 3) mesh triangles.
    nmfc_colors:
        (N, 3) NMFC vertex colours (``flame.nmfc_vertex_colors(v_template)``).
    size:
        Side of the aligned square (256 in NED).
    template:
        (68, 2) alignment template in pixels of ``size`` (``landmarks.template_68(size)``).
    forehead:
        How far the mask's brows are raised (``landmarks.face_outline``).
    backend:
        Rasterizer visibility backend ("auto", "torch" or "pytorch3d").
    """

    def __init__(self, faces: np.ndarray, nmfc_colors: np.ndarray, size: int = 256,
                 template: np.ndarray | None = None, forehead: float = 0.3, backend: str = "auto") -> None:
        self.faces = torch.as_tensor(np.asarray(faces), dtype=torch.long)
        self.colors = torch.as_tensor(np.asarray(nmfc_colors, np.float64))
        self.size = int(size)
        self.template = landmarks.template_68(self.size) if template is None else np.asarray(template)
        self.forehead = forehead
        self.backend = backend
        lights = LIGHT_DIRECTIONS / np.linalg.norm(LIGHT_DIRECTIONS, axis=1, keepdims=True)
        self.lights = torch.as_tensor(lights)

    def alignment(self, points68: np.ndarray) -> np.ndarray:
        """2x3 similarity from frame pixels to the aligned square (Umeyama onto the template)."""
        return landmarks.similarity_2d(points68, self.template)

    @staticmethod
    def eye_vertices(source: np.ndarray, points68: np.ndarray) -> np.ndarray:
        """(12,) index of the camera-facing vertex nearest each tracked eye point (36..47) in 2D.

        Computed once per shot on a reference frame; the edit then moves each eye point with its vertex.
        """
        src = np.asarray(source, np.float64)
        # The front half of the head (z toward the viewer above the median) holds the eyes.
        front = np.flatnonzero(src[:, 2] >= np.median(src[:, 2]))
        pts = np.asarray(points68, np.float64)[_EYE_POINTS]
        dist = np.linalg.norm(src[front, None, :2] - pts[None], axis=2)
        return front[np.argmin(dist, axis=0)]

    def _to_raster(self, verts: np.ndarray, align: np.ndarray) -> torch.Tensor:
        """Frame-pixel vertices -> rasterizer space (aligned pixels, centres at +0.5, z away)."""
        scale = float(np.sqrt(abs(np.linalg.det(align[:, :2]))))
        xy = landmarks.apply_2d(align, verts[:, :2]) + 0.5
        z = -scale * np.asarray(verts[:, 2], np.float64)
        return torch.as_tensor(np.concatenate([xy, z[:, None]], axis=1))

    def _render_mesh(self, verts: np.ndarray, align: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """NMFC and shape images (S, S, 3) of the mesh ``verts`` (frame pixels) in the aligned square."""
        size = self.size
        raster = self._to_raster(verts, align)
        fragments = rasterize(raster, self.faces, size, size, backend=self.backend)
        normals = vertex_normals(raster, self.faces)
        facing = interpolate(fragments, self.faces, normals)[..., 2] < FACING_THRESHOLD
        visible = (fragments.mask & facing).to(torch.float64)[..., None]
        nmfc = interpolate(fragments, self.faces, self.colors) * visible
        # Shade with normals in FLAME's frame: undo the in-plane alignment, flip y and z back.
        unaligned = torch.as_tensor(np.concatenate([verts[:, :2], -verts[:, 2:3]], axis=1).astype(np.float64))
        world = vertex_normals(unaligned, self.faces) * torch.tensor([1.0, -1.0, -1.0], dtype=torch.float64)
        pixel_normals = interpolate(fragments, self.faces, world)
        shading = (pixel_normals @ self.lights.T).clamp(0.0, 1.0).mean(dim=-1, keepdim=True) * LIGHT_INTENSITY
        shape = (SHAPE_ALBEDO * shading * visible).clamp(0.0, 1.0).expand(-1, -1, 3)
        return nmfc.float().numpy(), shape.float().numpy()

    def eyes(self, geometry: FrameGeometry, eye_ids: np.ndarray, align: np.ndarray,
             gray: np.ndarray | None = None) -> np.ndarray:
        """The eye-gaze image (S, S, 3) of the edited face."""
        src = np.asarray(geometry.points68, np.float64)[_EYE_POINTS]
        delta = (np.asarray(geometry.edited, np.float64)[eye_ids, :2]
                 - np.asarray(geometry.source, np.float64)[eye_ids, :2])
        moved = src + delta
        image = np.zeros((self.size, self.size, 3), np.uint8)
        for k in range(2):
            part = slice(6 * k, 6 * k + 6)
            if geometry.pupils is not None:
                pupil = np.asarray(geometry.pupils[k], np.float64)
            elif gray is not None:
                pupil = pupil_from_image(gray, src[part])
            else:
                pupil = src[part].mean(axis=0)
            pupil = pupil + (moved[part].mean(axis=0) - src[part].mean(axis=0))
            eye_aligned = landmarks.apply_2d(align, moved[part])
            radius = landmarks.eye_radius(eye_aligned)
            centre = landmarks.apply_2d(align, pupil[None])[0]
            # Sub-pixel disk: centre and radius in 1/16 px (shift 4).
            cv2.circle(image, (int(round(centre[0] * 16)), int(round(centre[1] * 16))), int(round(radius * 16)),
                       (255, 0, 0), thickness=-1, lineType=cv2.LINE_AA, shift=4)
        return image.astype(np.float32) / 255.0

    def mask(self, points68: np.ndarray, align: np.ndarray) -> np.ndarray:
        """The source face mask (S, S) float32 in {0, 1}."""
        outline = landmarks.apply_2d(align, landmarks.face_outline(points68, self.forehead))
        hull = cv2.convexHull(np.round(outline * 16).astype(np.int32))
        mask = np.zeros((self.size, self.size), np.uint8)
        cv2.fillPoly(mask, [hull], 1, lineType=cv2.LINE_8, shift=4)
        return mask.astype(np.float32)

    def frame(self, geometry: FrameGeometry, eye_ids: np.ndarray, gray: np.ndarray | None = None
              ) -> Conditioning:
        """All conditioning of one frame; ``gray`` (H, W) uint8 finds pupils when the track has none."""
        align = self.alignment(geometry.points68)
        nmfc, shape = self._render_mesh(np.asarray(geometry.edited, np.float64), align)
        return Conditioning(nmfc=nmfc, eye=self.eyes(geometry, eye_ids, align, gray), shape=shape,
                            mask=self.mask(geometry.points68, align), align=align)
