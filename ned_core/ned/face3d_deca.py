"""face3d backend ``deca``: DECA's coarse encoder and FLAME give each frame's 3D face.

For every frame where the tracker found the face, the 68-point box of its landmarks gives DECA's 224-px
crop (scale 1.25, ``crop_transform``), the coarse encoder regresses the 236 codes, and FLAME turns them
into 5023 vertices. The ``FaceFit`` holds:

* ``identity``: FLAME's neutral head for the shot's mean shape code (one identity per shot);
* ``expression``: per frame, the expression and jaw (all of DECA's pose but the global rotation) as
  vertex offsets from ``identity``;
* ``rotation``, ``scale``, ``translation``: DECA's global head rotation and orthographic camera, composed
  with the crop transform, mapping the face-local frame to analysed-frame pixels.

Face-local frame: FLAME's coordinates (metres) with y flipped, so x points to the image's right, y
down and z toward the viewer, as in the default face model (``ned_core.mesh``).

``params`` keeps DECA's per-frame codes as (T, ...) arrays (``shape, tex, exp, pose, cam, light``), the
crop transforms ``tform`` (T, 3, 3, analysed-frame pixels to crop pixels), ``identity_shape`` (the
mean shape code), and what the ``ned`` renderer needs from the track: ``points68`` (T, 68, 2, the
tracked landmarks in the 68-point scheme) and ``pupils`` (T, 2, 2: the tracker's iris centres, else
NED's darkest-centroid estimate from the frame, NaN where neither is known); the analysis cache
stores them all. The per-frame codes may also come from files (option
``codes``: a folder of NED pickles, our ``.npz`` or ``.json``), and ``save_codes`` writes them out.

Must not import zmq, msgpack or the engine.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from ned_core.errors import InvalidOptionError, NoFaceError
from ned_core.face3d.base import FaceFit
from ned_core.ned import deca_codes, landmarks, models
from ned_core.ned.checkpoints import load_deca_encoder
from ned_core.ned.conditioning import pupil_from_image
from ned_core.ned.deca_encoder import CROP_SIZE, crop_image, crop_transform, split_code
from ned_core.ned.flame import Flame, axis_angle_to_matrix, load_flame
from ned_core.track.base import FaceTrack

FLIP_Y = np.diag([1.0, -1.0, 1.0])
"""FLAME's coordinates (y up) <-> the face-local frame (y down)."""
ImageSource = Callable[[int], np.ndarray] | Mapping[int, np.ndarray]
"""The shot's frames by frame number: uint8 RGB, display-referred, what the tracker saw."""


def read_crop_boxes(path: str | Path) -> np.ndarray:
    """NED's ``videos/<name>.txt``: a header line, then one ``x1 y1 x2 y2`` crop box per frame (T, 4)."""
    try:
        lines = Path(path).read_text().splitlines()[1:]
        boxes = np.array([[float(v) for v in line.split()[:4]] for line in lines if line.strip()])
    except (OSError, ValueError) as exc:
        raise InvalidOptionError(f"{path} is not an NED crop-box file ({exc})", path=str(path),
                                 field="crop_boxes") from exc
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise InvalidOptionError(f"{path} holds no x1 y1 x2 y2 rows", path=str(path), field="crop_boxes")
    return boxes


def crop_box_transform(box: np.ndarray, size: int = 256) -> np.ndarray:
    """3x3 affine from frame pixels to NED's ``size`` crop of ``box`` (its MTCNN face crop)."""
    x1, y1, x2, y2 = (float(v) for v in box)
    sx, sy = size / (x2 - x1), size / (y2 - y1)
    # Pixel edges x1..x2 map onto 0..size; centres are at integer + 0.5 of the edges.
    return np.array([[sx, 0.0, (0.5 - x1) * sx - 0.5], [0.0, sy, (0.5 - y1) * sy - 0.5], [0.0, 0.0, 1.0]])


def _nearest_rotation(matrix: np.ndarray) -> tuple[float, np.ndarray]:
    """(k, Q): the closest scale times rotation to a 2x2 ``matrix`` (polar decomposition)."""
    u, sig, vt = np.linalg.svd(matrix)
    d = np.diag([1.0, np.sign(np.linalg.det(u @ vt)) or 1.0])
    return float(sig.mean()), u @ d @ vt


def pose_from_codes(flame: Flame, shape: np.ndarray, exp: np.ndarray, pose: np.ndarray, cam: np.ndarray,
                    tform: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Face-local to frame-pixel similarities (scale (T,), rotation (T, 3, 3), translation (T, 3)).

    ``shape`` is the (100,) identity code of the shot; ``exp``, ``pose``, ``cam``, ``tform`` per frame.
    DECA projects a FLAME point X to crop pixels ``112 + 112 * s * (X + t)`` with y flipped; the crop
    maps back to the frame through the inverse of ``tform``.
    """
    count = len(exp)
    with torch.no_grad():
        betas = torch.cat([torch.from_numpy(np.repeat(shape[None], count, 0)).float(),
                           torch.from_numpy(exp).float()], dim=1)
        v_shaped = flame.v_template + torch.einsum("bk,vck->bvc", betas, flame.shapedirs)
        root = (flame.j_regressor[0] @ v_shaped).double().numpy()  # (T, 3) root joint (FLAME frame)
        r_global = axis_angle_to_matrix(torch.from_numpy(pose[:, :3]).double()).numpy()
    r_local = FLIP_Y @ r_global @ FLIP_Y  # the same rotation in the face-local frame
    scale, rotation, translation = np.empty(count), np.empty((count, 3, 3)), np.empty((count, 3))
    for t in range(count):
        inv = np.linalg.inv(tform[t])
        k, q = _nearest_rotation(inv[:2, :2])
        s = 112.0 * float(cam[t, 0]) * k
        q3 = np.eye(3)
        q3[:2, :2] = q
        rot = q3 @ r_local[t]
        centre = FLIP_Y @ root[t]
        crop_xy = 112.0 + 112.0 * cam[t, 0] * np.array([cam[t, 1], -cam[t, 2]])
        offset = np.zeros(3)
        offset[:2] = inv[:2, :2] @ crop_xy + inv[:2, 2]
        scale[t], rotation[t] = s, rot
        translation[t] = s * (q3 @ (centre - r_local[t] @ centre)) + offset
    return scale, rotation, translation


def local_shapes(flame: Flame, shape: np.ndarray, exp: np.ndarray, jaw: np.ndarray,
                 batch: int = 256) -> np.ndarray:
    """Face-local (T, N, 3) vertices for a shot's identity ``shape`` (100,), ``exp`` (T, 50), ``jaw`` (T, 3).

    No global rotation: that is the pose's job. float32.
    """
    out = []
    with torch.no_grad():
        for start in range(0, len(exp), batch):
            e = torch.from_numpy(np.asarray(exp[start:start + batch], np.float32))
            j = torch.from_numpy(np.asarray(jaw[start:start + batch], np.float32))
            s = torch.from_numpy(np.asarray(shape, np.float32))[None].expand(len(e), -1)
            pose = torch.cat([torch.zeros(len(e), 3), j], dim=1)
            out.append(flame(s, e, pose).numpy())
    verts = np.concatenate(out) if out else np.zeros((0, flame.v_template.shape[0], 3), np.float32)
    return (verts * np.array([1.0, -1.0, 1.0], np.float32)).astype(np.float32)


def track_points68(track: FaceTrack) -> np.ndarray:
    """(T, 68, 2) float32 tracked landmarks in the 68-point scheme (NaN where lost).

    A track without a 68-point mapping gets its box corners and centre repeated, which keeps the crop
    working but makes the renderer's alignment meaningless: the ned renderer needs 68 points.
    """
    if landmarks.has_68(track.topology):
        return landmarks.to_68(track.landmarks, track.topology)[..., :2].astype(np.float32)
    boxes = np.asarray(track.boxes, np.float64)
    corners = np.stack([boxes[:, [0, 1]], boxes[:, [2, 1]], boxes[:, [2, 3]], boxes[:, [0, 3]]], axis=1)
    return np.repeat(corners, 17, axis=1).astype(np.float32)


def track_pupils(track: FaceTrack, points68: np.ndarray, images: ImageSource | None) -> np.ndarray:
    """(T, 2, 2) float32 pupil centres: the tracker's irises, else estimated from ``images``, else NaN."""
    irises = landmarks.pupils(track.landmarks, track.topology)
    if irises is not None:
        return irises.astype(np.float32)
    out = np.full((len(track.frames), 2, 2), np.nan, np.float32)
    if images is None:
        return out
    get = images.__getitem__ if isinstance(images, Mapping) else images
    for t in np.flatnonzero(track.found):
        rgb = np.asarray(get(track.frames[t]))[..., :3]
        gray = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)
        for k, eye in enumerate((landmarks.RIGHT_EYE, landmarks.LEFT_EYE)):
            out[t, k] = pupil_from_image(gray, points68[t, list(eye)])
    return out


class DecaFaceModeller:
    """face3d backend ``deca`` (see the module docstring).

    Parameters
    ----------
    flame, deca:
        Model file paths; default the files in ``$NED_MODELS`` (``ned models`` lists them).
    codes:
        A folder of per-frame DECA codes to use instead of running the encoder (one file per shot
        frame, in order). Their ``tform`` must map frame pixels to the 224 crop; NED's pickles map its
        256-px face crops instead, so give ``crop_boxes`` (NED's ``videos/<name>.txt``) with them.
    save_codes, codes_format:
        Also write the per-frame codes to this folder as ``NNNNNN.npz`` or ``.json``.
    device, batch_size:
        Where the encoder runs and how many crops it takes at once.
    """

    topology = "flame"
    needs_frames = True
    """The pipeline passes the shot's frames to ``fit`` (``images=``) for backends that set this."""

    def __init__(self, flame: str | None = None, deca: str | None = None, codes: str | None = None,
                 crop_boxes: str | None = None, save_codes: str | None = None, codes_format: str = "npz",
                 device: str = "cpu", batch_size: int = 16) -> None:
        self.flame = load_flame(models.require("flame", option=flame))
        self.codes_dir = Path(codes) if codes is not None else None
        self.crop_boxes = read_crop_boxes(crop_boxes) if crop_boxes is not None else None
        self.deca_path = models.require("deca", option=deca) if codes is None else None
        self.save_codes = save_codes
        if codes_format not in ("npz", "json"):
            raise InvalidOptionError(f"codes_format must be npz or json, got {codes_format!r}",
                                     field="codes_format")
        self.codes_format = codes_format
        self.device = torch.device(device)
        self.batch_size = max(1, int(batch_size))
        self._encoder: torch.nn.Module | None = None

    # -- codes ------------------------------------------------------------------------------------------
    def _encoder_net(self) -> torch.nn.Module:
        if self._encoder is None:
            assert self.deca_path is not None
            self._encoder = load_deca_encoder(self.deca_path).to(self.device)
        return self._encoder

    def encode(self, track: FaceTrack, images: ImageSource) -> dict[str, np.ndarray]:
        """DECA codes (T, ...) of every found frame of ``track`` (zeros where the face is lost)."""
        count = len(track.frames)
        codes = {k: np.zeros((count, *shape)) for k, shape in deca_codes.SHAPES.items()
                 if k not in ("detail", "original_size")}
        codes["tform"][:] = np.eye(3)
        found = np.flatnonzero(track.found)
        get = images.__getitem__ if isinstance(images, Mapping) else images
        pts68 = landmarks.to_68(track.landmarks, track.topology) if landmarks.has_68(track.topology) else None
        net = self._encoder_net()
        for start in range(0, len(found), self.batch_size):
            rows = found[start:start + self.batch_size]
            crops, tforms = [], []
            for t in rows:
                if pts68 is not None:
                    tform = crop_transform(landmarks.face_box(pts68[t]), "kpt68")
                else:
                    tform = crop_transform(track.boxes[t], "bbox")
                image = np.asarray(get(track.frames[t]))
                crops.append(crop_image(image[..., :3], tform, CROP_SIZE))
                tforms.append(tform)
            batch = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).to(self.device)
            with torch.no_grad():
                parts = split_code(net(batch).float().cpu())
            for key, value in parts.items():
                codes[key][rows] = value.double().numpy()
            codes["tform"][rows] = np.stack(tforms)
        return codes

    def _codes_from_files(self, track: FaceTrack) -> dict[str, np.ndarray]:
        assert self.codes_dir is not None
        codes = deca_codes.read_folder(self.codes_dir)
        count = len(track.frames)
        if len(codes["exp"]) != count:
            raise InvalidOptionError(f"{self.codes_dir} holds codes of {len(codes['exp'])} frames, the shot "
                                     f"has {count}", path=str(self.codes_dir), field="codes")
        for key in ("shape", "cam", "tform"):
            if key not in codes:
                raise InvalidOptionError(f"the codes in {self.codes_dir} have no {key!r}: the face fit needs "
                                         "shape, exp, pose, cam and tform", path=str(self.codes_dir),
                                         field="codes")
        if self.crop_boxes is not None:
            if len(self.crop_boxes) != count:
                raise InvalidOptionError(f"{len(self.crop_boxes)} crop boxes for {count} frames",
                                         field="crop_boxes")
            codes["tform"] = np.stack([t @ crop_box_transform(b) for t, b in zip(codes["tform"],
                                                                                  self.crop_boxes,
                                                                                  strict=True)])
        return codes

    # -- the fit ----------------------------------------------------------------------------------------
    def fit(self, track: FaceTrack, images: ImageSource | None = None) -> FaceFit:
        """The shot's FaceFit from its ``track`` and, unless ``codes`` was given, its frames ``images``."""
        if not track.found.any():
            raise NoFaceError("no frame of the track has a face", field="track")
        if self.codes_dir is not None:
            codes = self._codes_from_files(track)
        elif images is None:
            raise InvalidOptionError("the deca face model needs the shot's frames (or option codes=FOLDER "
                                     "with per-frame DECA codes)", field="face3d")
        else:
            codes = self.encode(track, images)
        if self.save_codes is not None:
            deca_codes.write_folder(self.save_codes, codes, fmt=self.codes_format)
        fit = self.fit_from_codes(track, codes)
        fit.params["pupils"] = track_pupils(track, fit.params["points68"], images)
        return fit

    def fit_from_codes(self, track: FaceTrack, codes: Mapping[str, np.ndarray]) -> FaceFit:
        """The FaceFit of per-frame (T, ...) ``codes`` (``shape, exp, pose, cam, tform``) for ``track``."""
        found = np.asarray(track.found, dtype=bool).copy()
        count = len(track.frames)
        identity_shape = np.asarray(codes["shape"])[found].mean(axis=0)
        exp, pose = np.asarray(codes["exp"], np.float64), np.asarray(codes["pose"], np.float64)
        identity = local_shapes(self.flame, identity_shape, np.zeros((1, exp.shape[1])), np.zeros((1, 3)))[0]
        shapes = local_shapes(self.flame, identity_shape, exp[found], pose[found, 3:6])
        expression = np.zeros((count, *identity.shape), np.float32)
        expression[found] = shapes - identity
        scale, rotation, translation = np.ones(count), np.tile(np.eye(3), (count, 1, 1)), np.zeros((count, 3))
        s, r, t = pose_from_codes(self.flame, identity_shape, exp[found], pose[found],
                                  np.asarray(codes["cam"], np.float64)[found],
                                  np.asarray(codes["tform"], np.float64)[found])
        scale[found], rotation[found], translation[found] = s, r, t
        params: dict[str, Any] = {k: np.asarray(v, np.float32) for k, v in codes.items()
                                  if k in ("shape", "tex", "exp", "pose", "cam", "light", "tform")}
        params["identity_shape"] = identity_shape.astype(np.float32)
        params["points68"] = track_points68(track)
        params["pupils"] = track_pupils(track, params["points68"], None)
        return FaceFit(frames=list(track.frames), identity=identity, expression=expression, rotation=rotation,
                       scale=scale, translation=translation, found=found,
                       topology=f"flame{identity.shape[0]}",
                       triangles=self.flame.faces.numpy().astype(np.int32), params=params)
