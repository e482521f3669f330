"""The default face model (identity + pose + expression from dense landmarks) on real tracks."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from ned_core import face3d, mesh
from ned_core.errors import InvalidOptionError, NoFaceError
from ned_core.face3d.base import FaceFit
from ned_core.face3d.landmark_fit import LandmarkFaceModeller, tessellation, triangulate
from ned_core.track.base import FaceTrack

GRID = Path("/work/shared/data/grid/grid_bbaf2n.mpg")
LONDON = Path("/work/shared/data/london/neutral/001_03.jpg")
pytest.importorskip("mediapipe")
av = pytest.importorskip("av")


@pytest.fixture(scope="module")
def grid_track() -> FaceTrack:
    if not GRID.exists():
        pytest.skip(f"{GRID} is not here")
    from ned_core.track.mediapipe_mesh import MediaPipeTracker

    with av.open(str(GRID)) as container:
        images = [f.to_ndarray(format="rgb24") for _, f in zip(range(30), container.decode(video=0),
                                                               strict=False)]
    return MediaPipeTracker().track(list(range(1001, 1031)), images)


@pytest.fixture(scope="module")
def grid_fit(grid_track: FaceTrack) -> FaceFit:
    return LandmarkFaceModeller().fit(grid_track)


def rotation_matrix(axis: np.ndarray, degrees: float) -> np.ndarray:
    axis = axis / np.linalg.norm(axis)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    a = np.deg2rad(degrees)
    return np.eye(3) + np.sin(a) * k + (1 - np.cos(a)) * k @ k


def test_registered_by_name() -> None:
    assert isinstance(face3d.get("landmarks"), LandmarkFaceModeller)
    assert face3d.DEFAULT == "landmarks"


def test_fit_shapes_and_types(grid_fit: FaceFit) -> None:
    n, t = mesh.N_VERTICES, 30
    assert grid_fit.frames == list(range(1001, 1031))
    assert grid_fit.identity.shape == (n, 3) and grid_fit.expression.shape == (t, n, 3)
    assert grid_fit.rotation.shape == (t, 3, 3) and grid_fit.scale.shape == (t,)
    assert grid_fit.translation.shape == (t, 3) and grid_fit.found.all()
    assert grid_fit.topology == mesh.TOPOLOGY and grid_fit.params == {}
    assert np.allclose(grid_fit.rotation @ grid_fit.rotation.transpose(0, 2, 1), np.eye(3), atol=1e-5)
    assert np.all(np.linalg.det(grid_fit.rotation) > 0)


def test_identity_is_in_the_face_local_frame(grid_fit: FaceFit) -> None:
    identity = grid_fit.identity.astype(np.float64)
    scale, rotation, centre = mesh.canonical_pose(identity)
    assert scale == pytest.approx(1.0, abs=1e-5)
    assert np.allclose(rotation, np.eye(3), atol=1e-5) and np.allclose(centre, 0, atol=1e-5)
    # Roughly a face: eyes above the mouth, chin lowest, nose tip toward the viewer.
    assert identity[mesh.CHIN, 1] > identity[mesh.UPPER_LIP_OUTER, 1] > identity[mesh.RIGHT_EYE_OUTER, 1]
    assert identity[mesh.NOSE_TIP, 2] > identity[mesh.RIGHT_EYE_OUTER, 2]


def test_identity_plus_expression_reproduces_the_track(grid_fit: FaceFit, grid_track: FaceTrack) -> None:
    for i in range(len(grid_fit.frames)):
        back = grid_fit.to_image(i, grid_fit.local_shape(i))
        assert np.abs(back - grid_track.landmarks[i]).max() < 1e-2  # pixels
    # The pose carries the head; expressions stay small offsets, smallest on the stable points.
    expression = np.linalg.norm(grid_fit.expression, axis=-1)
    assert expression[:, list(mesh.STABLE)].mean() < 0.01
    assert expression.mean() < 0.03


def test_speech_is_in_the_expression(grid_fit: FaceFit) -> None:
    lower = grid_fit.expression[:, mesh.LOWER_LIP_INNER, 1] - grid_fit.expression[:, mesh.UPPER_LIP_INNER, 1]
    assert np.ptp(lower) > 0.03  # the mouth opens and closes over the 30 frames


def test_pose_of_a_transformed_copy_is_recovered(grid_track: FaceTrack, grid_fit: FaceFit) -> None:
    rot = rotation_matrix(np.array([0.3, 1.0, 0.2]), 25.0)
    scale, shift = 1.7, np.array([40.0, -25.0, 10.0])
    moved = replace(grid_track, landmarks=(scale * grid_track.landmarks.astype(np.float64) @ rot.T
                                           + shift).astype(np.float32))
    fit = LandmarkFaceModeller().fit(moved)
    assert np.allclose(fit.identity, grid_fit.identity, atol=2e-3)
    assert np.allclose(fit.expression, grid_fit.expression, atol=2e-3)
    assert np.allclose(fit.scale, scale * grid_fit.scale, rtol=2e-3)
    assert np.allclose(fit.rotation, rot @ grid_fit.rotation, atol=2e-3)
    expected = scale * grid_fit.translation.astype(np.float64) @ rot.T + shift
    assert np.allclose(fit.translation, expected, atol=0.1)


def test_per_frame_pose_of_a_synthetic_head_is_recovered(grid_fit: FaceFit) -> None:
    # A rigid head (no expression) turning and moving: the fit must find exactly those poses.
    t = np.arange(20)
    rotations = np.stack([rotation_matrix(np.array([0.0, 1.0, 0.1]), a) for a in 2.0 * t - 20])
    scales = 80 + 1.5 * t
    translations = np.stack([150 + 3 * t, 140 - t, 0 * t], axis=1).astype(np.float64)
    head = grid_fit.identity.astype(np.float64)
    points = scales[:, None, None] * np.einsum("nj,tkj->tnk", head, rotations) + translations[:, None]
    track = FaceTrack(frames=list(t), landmarks=points.astype(np.float32), found=np.ones(20, bool),
                      confidence=np.ones(20, np.float32), boxes=np.zeros((20, 4), np.float32),
                      image_size=(360, 288), topology=mesh.TOPOLOGY)
    fit = LandmarkFaceModeller().fit(track)
    assert np.allclose(fit.scale, scales, rtol=1e-3)
    assert np.allclose(fit.rotation, rotations, atol=1e-3)
    assert np.allclose(fit.translation, translations, atol=0.05)
    assert np.abs(fit.expression).max() < 1e-3


def test_lost_frames_get_the_neutral_pose(grid_track: FaceTrack) -> None:
    landmarks = grid_track.landmarks.copy()
    found = grid_track.found.copy()
    landmarks[10:13] = np.nan
    found[10:13] = False
    fit = LandmarkFaceModeller().fit(replace(grid_track, landmarks=landmarks, found=found))
    assert fit.found.tolist() == found.tolist()
    assert np.all(fit.rotation[10:13] == np.eye(3)) and np.all(fit.scale[10:13] == 1)
    assert np.all(fit.translation[10:13] == 0) and np.all(fit.expression[10:13] == 0)
    assert np.isfinite(fit.expression).all()
    back = fit.to_image(13, fit.local_shape(13))
    assert np.abs(back - landmarks[13]).max() < 1e-2


def test_single_still_photo() -> None:
    if not LONDON.exists():
        pytest.skip(f"{LONDON} is not here")
    from ned_core.track.mediapipe_mesh import MediaPipeTracker

    image = cv2.cvtColor(cv2.imread(str(LONDON)), cv2.COLOR_BGR2RGB)
    track = MediaPipeTracker().track([0], [image])
    fit = LandmarkFaceModeller().fit(track)
    assert fit.identity.shape == (mesh.N_VERTICES, 3) and fit.found.tolist() == [True]
    # A still is its own identity: no expression left, and the pose maps it onto the photo.
    assert np.abs(fit.expression).max() < 1e-5
    assert np.abs(fit.to_image(0, fit.identity) - track.landmarks[0]).max() < 1e-2
    assert fit.scale[0] == pytest.approx(np.linalg.norm(track.landmarks[0, 263] - track.landmarks[0, 33]),
                                         rel=0.05)


def _areas(xy: np.ndarray, tri: np.ndarray) -> np.ndarray:
    a, b, c = xy[tri[:, 0]], xy[tri[:, 1]], xy[tri[:, 2]]
    return 0.5 * ((b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0]))


def _edge_uses(tri: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    edges = np.sort(np.concatenate([tri[:, [0, 1]], tri[:, [1, 2]], tri[:, [2, 0]]]), axis=1)
    return np.unique(edges, axis=0, return_counts=True)


def _covered(point: np.ndarray, xy: np.ndarray, tri: np.ndarray) -> bool:
    for t in tri:
        polygon = xy[t].astype(np.float32).reshape(-1, 1, 2)
        if cv2.pointPolygonTest(polygon, (float(point[0]), float(point[1])), False) >= 0:
            return True
    return False


FACE_OVAL = {10, 109, 67, 103, 54, 21, 162, 127, 234, 93, 132, 58, 172, 136, 150, 149, 176, 148, 152, 377,
             400, 378, 379, 365, 397, 288, 361, 323, 454, 356, 389, 251, 284, 332, 297, 338}
IRIS_RINGS = set(range(469, 473)) | set(range(474, 478))
UPPER_LIDS = (246, 161, 160, 159, 158, 157, 173, 398, 384, 385, 386, 387, 388, 466)
LOWER_LIDS = (7, 163, 144, 145, 153, 154, 155, 382, 381, 380, 374, 373, 390, 249)


def test_triangles_cover_the_face_without_holes(grid_fit: FaceFit) -> None:
    tri = grid_fit.triangles
    assert tri.dtype == np.int32 and tri.ndim == 2 and tri.shape[1] == 3
    used = set(np.unique(tri).tolist())
    # Every face point and both iris centres; only iris ring points hidden under a lid may stay out.
    assert used >= set(range(468)) | {468, 473}
    assert set(range(mesh.N_VERTICES)) - used <= IRIS_RINGS
    # A proper 2-manifold whose only border is the face oval: the eye and mouth openings are filled.
    edges, uses = _edge_uses(tri)
    assert uses.max() == 2
    border = edges[uses == 1]
    assert set(border.ravel().tolist()) == FACE_OVAL and len(border) == len(FACE_OVAL)
    # One winding, and the areas add up to the hull's. The frontal projection of the 3D mesh folds a
    # little at the nose wings and mouth corners: those few triangles stay tiny.
    xy = grid_fit.identity[:, :2].astype(np.float64)
    area = _areas(xy, tri)
    hull = cv2.contourArea(cv2.convexHull(xy.astype(np.float32)))
    assert area.sum() == pytest.approx(hull, rel=1e-3)
    assert (area <= 0).sum() <= 8 and -area[area < 0].sum() < 1e-3 * hull
    mouth_centre = (xy[mesh.UPPER_LIP_INNER] + xy[mesh.LOWER_LIP_INNER]) / 2
    assert _covered(mouth_centre, xy, tri)
    for upper, lower in ((159, 145), (386, 374)):  # across each eye, lid to lid
        for f in np.linspace(0.1, 0.9, 5):
            assert _covered(xy[upper] + f * (xy[lower] - xy[upper]), xy, tri)


def test_openings_are_filled_lip_to_lip_and_lid_to_iris(grid_fit: FaceFit) -> None:
    tri = grid_fit.triangles
    edges = {tuple(e) for e in _edge_uses(tri)[0].tolist()}
    # The mouth strip joins each inner-lip pair, so the inside of the mouth moves with both lips.
    assert all(tuple(sorted(pair)) in edges for pair in mesh.INNER_LIP_PAIRS if pair[0] != pair[1])
    # The lids are tied to the visible iris, never to a ring point hidden under them.
    for centre in (468, 473):
        assert any(centre in e and set(e) & set(UPPER_LIDS) for e in edges)
        assert any(centre in e and set(e) & set(LOWER_LIDS) for e in edges)
    hidden = IRIS_RINGS - set(np.unique(tri).tolist())
    assert hidden == {470, 472, 475, 477}  # this actor's lids cover the top and bottom of his irises
    xy = grid_fit.identity[:, :2].astype(np.float64)
    assert np.all(_areas(xy, tri[len(tessellation()):]) > 0)  # the fills are proper triangles here


def test_lid_motion_over_still_irises_keeps_the_eye_fill_unfolded(grid_fit: FaceFit) -> None:
    # Wide eyes: upper lids up by a third of the opening, lower lids up a fifth, irises still. No triangle
    # holding an iris point may flip or shrink below a quarter of its area (the FACS rig's fold guard
    # would cut the edit's motion around it).
    shape = grid_fit.identity.astype(np.float64).copy()
    tri = grid_fit.triangles
    opening = float(np.mean(shape[[145, 374], 1] - shape[[159, 386], 1]))
    before = _areas(shape[:, :2], tri)
    shape[list(UPPER_LIDS), 1] -= opening / 3
    shape[list(LOWER_LIDS), 1] -= opening / 5
    after = _areas(shape[:, :2], tri)
    iris = np.isin(tri, [468, 473] + sorted(IRIS_RINGS)).any(axis=1)
    assert iris.sum() >= 20
    assert np.all(after[iris] >= 0.25 * before[iris])


def test_visible_iris_points_join_the_eye_fill(grid_fit: FaceFit) -> None:
    shape = grid_fit.identity.astype(np.float64).copy()
    # Open the subject's right eye wide enough to show the whole iris: its top and bottom join the fill.
    radius = float(np.linalg.norm(shape[470, :2] - shape[468, :2]))
    shape[[246, 161, 160, 159, 158, 157, 173], 1] -= 1.2 * radius
    shape[[7, 163, 144, 145, 153, 154, 155], 1] += 1.2 * radius
    tri = triangulate(shape)
    used = set(np.unique(tri).tolist())
    assert {468, 469, 470, 471, 472} <= used and not {475, 477} & used
    area = _areas(shape[:, :2], tri)
    assert np.all(area[np.isin(tri, [468, 469, 470, 471, 472]).any(axis=1)] > 0)
    edges, uses = _edge_uses(tri)
    assert uses.max() == 2 and len(edges[uses == 1]) == len(FACE_OVAL)


def test_triangulate_rejects_other_shapes(grid_fit: FaceFit) -> None:
    with pytest.raises(InvalidOptionError):
        triangulate(grid_fit.identity[:68])
    broken = grid_fit.identity.copy()
    broken[5] = np.nan
    with pytest.raises(InvalidOptionError):
        triangulate(broken)


def test_shipped_tessellation_is_mediapipes() -> None:
    from mediapipe.python.solutions.face_mesh_connections import FACEMESH_TESSELATION

    tri = tessellation()
    assert tri.shape == (852, 3) and tri.min() == 0 and tri.max() == 467
    assert {tuple(sorted(e)) for e in FACEMESH_TESSELATION} == {tuple(e) for e in _edge_uses(tri)[0].tolist()}
    # One consistent winding: every directed edge appears once.
    directed = np.concatenate([tri[:, [0, 1]], tri[:, [1, 2]], tri[:, [2, 0]]])
    assert len(np.unique(directed, axis=0)) == len(directed)


def test_bad_tracks_are_reported(grid_track: FaceTrack) -> None:
    with pytest.raises(InvalidOptionError):
        LandmarkFaceModeller().fit(replace(grid_track, topology="fan68"))
    with pytest.raises(InvalidOptionError):
        LandmarkFaceModeller().fit(replace(grid_track, landmarks=grid_track.landmarks[:, :68]))
    lost = replace(grid_track, landmarks=np.full_like(grid_track.landmarks, np.nan),
                   found=np.zeros(len(grid_track.frames), bool))
    with pytest.raises(NoFaceError):
        LandmarkFaceModeller().fit(lost)
    with pytest.raises(InvalidOptionError):
        LandmarkFaceModeller(iterations=0)
    with pytest.raises(InvalidOptionError):
        LandmarkFaceModeller(pose_smoothing=-1)
