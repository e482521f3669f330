"""Shared fixtures for the NED backend tests: a tiny synthetic FLAME-like model."""

from __future__ import annotations

import numpy as np
import pytest

# Joints of FLAME: 0 global (root), 1 neck, 2 jaw, 3 and 4 eyes.
ROOT, NECK, JAW, EYE_L, EYE_R = range(5)
N_SHAPE_TOTAL, N_EXPR_TOTAL = 6, 4


def tiny_flame_arrays(seed: int = 0) -> dict[str, np.ndarray]:
    """A 16-vertex model with FLAME's keys and joint tree; vertices 8..11 follow the jaw only."""
    rng = np.random.default_rng(seed)
    n_vert = 16
    v_template = rng.normal(size=(n_vert, 3)).astype(np.float32)
    owner = np.array([ROOT] * 4 + [NECK] * 4 + [JAW] * 4 + [EYE_L] * 2 + [EYE_R] * 2)
    weights = np.zeros((n_vert, 5), np.float32)
    weights[np.arange(n_vert), owner] = 1.0
    j_regressor = np.zeros((5, n_vert), np.float32)
    for j in range(5):
        j_regressor[j, owner == j] = 1.0 / np.sum(owner == j)
    shapedirs = rng.normal(size=(n_vert, 3, N_SHAPE_TOTAL + N_EXPR_TOTAL)).astype(np.float32) * 0.1
    posedirs = np.zeros((n_vert, 3, 36), np.float32)
    posedirs[owner == JAW] = rng.normal(size=(4, 3, 36)) * 0.05  # correctives only on the jaw
    faces = np.array([[0, 1, 2], [1, 2, 3], [4, 5, 6], [8, 9, 10], [9, 10, 11], [12, 13, 14]])
    kintree = np.array([[2**32 - 1, ROOT, NECK, NECK, NECK], [0, 1, 2, 3, 4]], dtype=np.int64)
    return {"v_template": v_template, "shapedirs": shapedirs, "posedirs": posedirs,
            "J_regressor": j_regressor, "kintree_table": kintree, "weights": weights, "f": faces}


@pytest.fixture
def tiny_flame_npz(tmp_path):
    path = tmp_path / "tiny_flame.npz"
    np.savez(path, **tiny_flame_arrays())
    return path


# --- A tiny FLAME-like head for the NED backend path: a closed ellipsoid with FLAME's joint tree ------

HEAD_RADII = (0.08, 0.1, 0.09)  # metres: half width, half height, half depth (FLAME-like scale)
N_COMPONENTS = 150  # 100 identity + 50 expression components, as DECA uses


def head_flame_arrays(n_lat: int = 10, n_lon: int = 16, seed: int = 0) -> dict[str, np.ndarray]:
    """An ellipsoid head (y up, z toward the viewer, outward-wound triangles) with FLAME's keys.

    The lower front of the head follows the jaw joint; identity and expression components are small
    smooth random displacements (a few millimetres).
    """
    rng = np.random.default_rng(seed)
    rings = [np.array([[0.0, 1.0, 0.0]])]
    for i in range(1, n_lat):
        theta = np.pi * i / n_lat
        phi = 2 * np.pi * np.arange(n_lon) / n_lon
        rings.append(np.stack([np.sin(theta) * np.sin(phi), np.full(n_lon, np.cos(theta)),
                               np.sin(theta) * np.cos(phi)], axis=1))
    rings.append(np.array([[0.0, -1.0, 0.0]]))
    unit = np.concatenate(rings)
    verts = unit * np.array(HEAD_RADII)
    faces = []
    ring = lambda i, j: 1 + (i - 1) * n_lon + (j % n_lon)  # noqa: E731 - ring i >= 1, column j
    south = len(verts) - 1
    for j in range(n_lon):
        faces.append([0, ring(1, j), ring(1, j + 1)])
        for i in range(1, n_lat - 1):
            a, b, c, d = ring(i, j), ring(i + 1, j), ring(i + 1, j + 1), ring(i, j + 1)
            faces += [[a, b, c], [a, c, d]]
        faces.append([ring(n_lat - 1, j), south, ring(n_lat - 1, j + 1)])
    faces = np.array(faces, np.int64)
    # Orient every triangle outward (its normal along the radial direction).
    tri = verts[faces]
    normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    flip = (normal * tri.mean(axis=1)).sum(axis=1) < 0
    faces[flip] = faces[flip][:, ::-1]
    n_vert = len(verts)
    jaw = (verts[:, 1] < -0.03) & (verts[:, 2] > 0.0)
    weights = np.zeros((n_vert, 5), np.float32)
    weights[jaw, JAW] = 1.0
    weights[~jaw, NECK] = 1.0
    j_regressor = np.zeros((5, n_vert), np.float32)
    j_regressor[ROOT] = j_regressor[NECK] = 1.0 / n_vert
    j_regressor[JAW, jaw] = 1.0 / jaw.sum()
    for joint, x in ((EYE_L, 0.03), (EYE_R, -0.03)):
        j_regressor[joint, np.argmin(np.linalg.norm(verts - [x, 0.03, 0.08], axis=1))] = 1.0
    smooth = np.stack([unit[:, 0], unit[:, 1], unit[:, 2], unit[:, 0] * unit[:, 1], unit[:, 1] ** 2], axis=1)
    shapedirs = np.einsum("vk,kcn->vcn", smooth, rng.normal(size=(5, 3, N_COMPONENTS))) * 0.002
    posedirs = np.zeros((n_vert, 3, 36), np.float32)
    kintree = np.array([[2**32 - 1, ROOT, NECK, NECK, NECK], [0, 1, 2, 3, 4]], dtype=np.int64)
    return {"v_template": verts.astype(np.float32), "shapedirs": shapedirs.astype(np.float32),
            "posedirs": posedirs, "J_regressor": j_regressor, "kintree_table": kintree, "weights": weights,
            "f": faces}


@pytest.fixture(scope="session")
def head_flame_npz(tmp_path_factory):
    path = tmp_path_factory.mktemp("flame") / "head_flame.npz"
    np.savez(path, **head_flame_arrays())
    return path


# --- Tiny model files and a synthetic shot for the --backend ned path --------------------------------

PLATE_W, PLATE_H, PLATE_FRAMES = 160, 120, list(range(1001, 1013))
LOST_FRAME = 1006


def tiny_deca_encoder():
    """A one-block-per-stage DECA encoder whose codes hardly depend on the image: a head facing the camera.

    The last layer's bias holds the codes (camera scale 7, jaw opening 0.1); its weights are scaled
    down so the per-frame codes vary only a little.
    """
    import torch

    from ned_core.ned.deca_encoder import CODE_SIZES, DecaCoarseEncoder

    torch.manual_seed(0)
    enc = DecaCoarseEncoder(layers=(1, 1, 1, 1))
    offsets = dict(zip(CODE_SIZES, np.cumsum([0, *CODE_SIZES.values()])[:-1], strict=True))
    code = torch.zeros(sum(CODE_SIZES.values()))
    code[offsets["cam"]] = 7.0
    code[offsets["pose"] + 3] = 0.1
    with torch.no_grad():
        enc.layers[2].weight.mul_(1e-3)
        enc.layers[2].bias.copy_(code)
    return enc


def tiny_manipulator_nets(seed: int = 0):
    import torch

    from ned_core.ned.manipulator_nets import Discriminator, Generator, MappingNetwork, StyleEncoder

    torch.manual_seed(seed)
    enc = {"hidden_dims": (32, 16), "lstm_dim": 8, "head_dims": (16, 8)}
    return (Generator(hidden_dim=32, lstm_dim=16), MappingNetwork(hidden_dim=16), StyleEncoder(**enc),
            Discriminator(**enc))


def tiny_renderer():
    import torch

    from ned_core.ned.renderer_nets import Generator

    torch.manual_seed(0)
    return Generator(ngf=4, n_downsample=2, n_blocks=2)


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory, head_flame_npz):
    """Paths of a tiny FLAME-like head, DECA file, manipulator and renderer, in $NED_MODELS layout."""
    import torch

    from ned_core.ned import checkpoints

    root = tmp_path_factory.mktemp("ned_models")
    (root / "flame").mkdir()
    flame = root / "flame" / "generic_model.npz"
    flame.write_bytes(head_flame_npz.read_bytes())
    (root / "deca").mkdir()
    deca = root / "deca" / "deca_model.tar"
    torch.save({"E_flame": tiny_deca_encoder().state_dict()}, deca)
    g, f, e, d = tiny_manipulator_nets()
    manipulator = checkpoints.save_manipulator(root / "manipulator" / "02_nets_finetuned.pth", g, f, e, d)
    renderer = checkpoints.save_renderer(root / "renderer" / "actor" / "20_net_G.pth", tiny_renderer())
    return {"root": root, "flame": str(flame), "deca": str(deca), "manipulator": str(manipulator),
            "renderer": str(renderer)}


def write_plate(directory, frames=PLATE_FRAMES, seed: int = 0) -> str:
    """A scene-linear half-float EXR sequence ``plate.####.exr`` of noise; returns its pattern."""
    import OpenImageIO as oiio

    rng = np.random.default_rng(seed)
    for frame in frames:
        pixels = (rng.random((PLATE_H, PLATE_W, 3)) * 0.5).astype(np.float32)
        path = str(directory / f"plate.{frame}.exr")
        out = oiio.ImageOutput.create(path)
        out.open(path, oiio.ImageSpec(PLATE_W, PLATE_H, 3, "half"))
        out.write_image(pixels)
        out.close()
    return str(directory / "plate.####.exr")


class StandInTracker:
    """68 points of the template placed on the plate, the mouth moving; one frame lost.

    Keeps the frames it was given (``images``) so the deca face model can read them in tests.
    """

    topology = "ibug68"

    def __init__(self, lost: tuple[int, ...] = (LOST_FRAME,)) -> None:
        self.lost = set(lost)
        self.images: dict[int, np.ndarray] = {}

    def track(self, frames, images, hint=None, progress=None):
        from ned_core.ned import landmarks
        from ned_core.track.base import FaceTrack

        self.images = dict(zip(frames, images, strict=True))
        points = landmarks.template_68(256) * 0.35 + [35.0, 5.0]
        lm = np.repeat(np.c_[points, np.zeros(68)][None], len(frames), axis=0).astype(np.float32)
        lm[:, 48:68, 1] += np.sin(np.arange(len(frames)))[:, None] * 1.5  # speech
        found = np.array([f not in self.lost for f in frames])
        lm[~found] = np.nan
        boxes = np.tile([50, 30, 110, 90], (len(frames), 1)).astype(np.float32)
        return FaceTrack(frames=list(frames), landmarks=lm, found=found, confidence=found.astype(np.float32),
                         boxes=boxes, image_size=(PLATE_W, PLATE_H), topology=self.topology)

    def detect(self, image):
        return [(50.0, 30.0, 110.0, 90.0)]


class FramesFromTracker:
    """face3d stage for tests: the deca model fed with the frames the stand-in tracker saw.

    (The pipeline does not hand frames to face3d yet; see the report to the lead.)
    """

    def __init__(self, modeller, tracker: StandInTracker) -> None:
        self.modeller, self.tracker = modeller, tracker

    def fit(self, track):
        return self.modeller.fit(track, images=self.tracker.images)
