"""Speed of the NED backend, stage by stage, at full size with random weights (CPU, and CUDA if present).

Per-frame seconds of each stage of ``--backend ned``:
  reconstruct        224-px crop + DECA's ResNet-50 coarse encoder (batch 16) + FLAME and the pose
  manipulate         the manipulator over a 250-frame shot (10-frame windows, hop 1), per frame
  conditioning       NMFC + shape + eye + mask images at 256 px (our PyTorch rasterizer)
  neural render      the renderer generator (70.8 M parameters) at 256 px
  blend              un-align + colour + Laplacian-pyramid composite into a 1920x1080 plate
and the rasterizer alone (256 px, a 5042-vertex, 10080-triangle head) against pytorch3d's where
pytorch3d imports. The head is a FLAME-sized ellipsoid (FLAME itself is not shipped); weights are random,
which does not change the cost. Figures go to stdout as a table (``--json FILE`` also writes them).

    .venv/bin/python benchmarks/ned_backend.py [--frames 5] [--threads N] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from ned_core.composite.pyramid import PyramidCompositor
from ned_core.ned import checkpoints, landmarks
from ned_core.ned.conditioning import Conditioner, FrameGeometry
from ned_core.ned.deca_encoder import DecaCoarseEncoder, crop_image, crop_transform, split_code
from ned_core.ned.face3d_deca import DecaFaceModeller
from ned_core.ned.flame import load_flame, nmfc_vertex_colors
from ned_core.ned.manipulate_ned import NedManipulator
from ned_core.ned.manipulator_nets import Discriminator, Generator, MappingNetwork, StyleEncoder
from ned_core.ned.rasterizer import has_pytorch3d, rasterize
from ned_core.ned.render_ned import NedRenderer
from ned_core.ned.renderer_nets import Generator as RendererGenerator
from ned_core.render.base import FrameFace
from ned_core.track.base import FaceTrack

PLATE = (1080, 1920)
SHOT = 250


def head_model(n_lat: int = 64, n_lon: int = 80) -> dict[str, np.ndarray]:
    """A FLAME-sized head: an ellipsoid with FLAME's keys, 400 components, jaw-skinned lower front."""
    rng = np.random.default_rng(0)
    theta = np.pi * np.arange(1, n_lat) / n_lat
    phi = 2 * np.pi * np.arange(n_lon) / n_lon
    t, p = np.meshgrid(theta, phi, indexing="ij")
    unit = np.concatenate([[[0, 1, 0]], np.stack([np.sin(t) * np.sin(p), np.cos(t), np.sin(t) * np.cos(p)],
                                                 -1).reshape(-1, 3), [[0, -1, 0]]])
    verts = unit * [0.08, 0.1, 0.09]
    ring = lambda i, j: 1 + (i - 1) * n_lon + j % n_lon  # noqa: E731
    faces = [[0, ring(1, j), ring(1, j + 1)] for j in range(n_lon)]
    for i in range(1, n_lat - 1):
        for j in range(n_lon):
            a, b, c, d = ring(i, j), ring(i + 1, j), ring(i + 1, j + 1), ring(i, j + 1)
            faces += [[a, b, c], [a, c, d]]
    faces += [[ring(n_lat - 1, j), len(verts) - 1, ring(n_lat - 1, j + 1)] for j in range(n_lon)]
    faces = np.array(faces)
    tri = verts[faces]
    flip = (np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]) * tri.mean(1)).sum(1) < 0
    faces[flip] = faces[flip][:, ::-1]
    jaw = (verts[:, 1] < -0.03) & (verts[:, 2] > 0)
    weights = np.zeros((len(verts), 5))
    weights[jaw, 2], weights[~jaw, 1] = 1.0, 1.0
    regressor = np.full((5, len(verts)), 1.0 / len(verts))
    return {"v_template": verts, "shapedirs": rng.normal(size=(len(verts), 3, 400)) * 1e-3,
            "posedirs": rng.normal(size=(len(verts), 3, 36)) * 1e-4, "J_regressor": regressor,
            "kintree_table": np.array([[2**32 - 1, 0, 1, 1, 1], [0, 1, 2, 3, 4]]), "weights": weights, "f": faces}


def timed(fn: Callable[[], object], repeat: int) -> float:
    """Median seconds of ``fn`` over ``repeat`` runs after one warm-up run."""
    fn()
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - start)
    return float(np.median(runs))


def _track(count: int) -> FaceTrack:
    points = landmarks.template_68(256) * 1.6 + [760.0, 200.0]
    lm = np.repeat(np.c_[points, np.zeros(68)][None], count, 0)
    return FaceTrack(frames=list(range(count)), landmarks=lm, found=np.ones(count, bool),
                     confidence=np.ones(count), boxes=np.zeros((count, 4)), image_size=PLATE[::-1],
                     topology="ibug68")


def bench(device: str, repeat: int, workdir: Path) -> dict[str, float]:
    """Per-frame seconds of each stage on ``device``."""
    torch.manual_seed(0)
    dev = torch.device(device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    flame_path = workdir / "head.npz"
    np.savez(flame_path, **head_model())
    deca_path = workdir / "deca_model.tar"
    if not deca_path.exists():
        encoder = DecaCoarseEncoder()
        with torch.no_grad():
            encoder.layers[2].weight.mul_(1e-3)
            encoder.layers[2].bias.zero_()
            encoder.layers[2].bias[156] = 7.0  # camera scale: the head fills the crop
        torch.save({"E_flame": encoder.state_dict()}, deca_path)
        checkpoints.save_manipulator(workdir / "02_nets_finetuned.pth", Generator(), MappingNetwork(),
                                     StyleEncoder(), Discriminator())
        checkpoints.save_renderer(workdir / "20_net_G.pth", RendererGenerator())
    figures: dict[str, float] = {}

    # reconstruct: crop + encoder (batch 16) + FLAME/pose, per frame
    modeller = DecaFaceModeller(flame=str(flame_path), deca=str(deca_path), device=device, batch_size=16)
    batch = 16
    track = _track(batch)
    frame = np.random.default_rng(0).integers(0, 255, (*PLATE, 3), dtype=np.uint8)
    images = {f: frame for f in track.frames}

    def reconstruct() -> object:
        fit = modeller.fit(track, images=images)
        sync()
        return fit

    figures["reconstruct"] = timed(reconstruct, repeat) / batch
    fit = modeller.fit(track, images=images)
    net = modeller._encoder_net()
    crop = torch.from_numpy(crop_image(frame, crop_transform(landmarks.face_box(track.landmarks[0]))))[None]
    crops = crop.permute(0, 3, 1, 2).repeat(batch, 1, 1, 1).to(dev)

    def encode() -> object:
        with torch.no_grad():
            out = split_code(net(crops).float())
        sync()
        return out

    figures["  DECA encoder alone"] = timed(encode, repeat) / batch

    # manipulate: a 250-frame shot
    shot_track = _track(SHOT)
    codes = {k: np.repeat(v[:1], SHOT, 0) for k, v in fit.params.items() if v.ndim >= 2 and len(v) == batch}
    codes["exp"] = codes["exp"] + np.random.default_rng(1).normal(size=codes["exp"].shape) * 0.1
    shot_fit = modeller.fit_from_codes(shot_track, codes)
    manipulator = NedManipulator(checkpoint=str(workdir / "02_nets_finetuned.pth"), flame=str(flame_path),
                                 device=device)
    weights = np.zeros((SHOT, 7))
    weights[:, 4] = 1.0

    def manipulate() -> object:
        out = manipulator.edit(shot_fit, weights, 0.0)
        sync()
        return out

    figures["manipulate"] = timed(manipulate, max(1, repeat // 2)) / SHOT
    edited = manipulator.edit(shot_fit, weights, 0.0)

    # conditioning at 256
    flame = load_flame(flame_path)
    conditioner = Conditioner(flame.faces.numpy(), nmfc_vertex_colors(flame.v_template).numpy(), 256,
                              backend="torch")
    geometry = FrameGeometry(shot_fit.to_image(0, shot_fit.local_shape(0)),
                             shot_fit.to_image(0, shot_fit.identity + edited[0]), shot_fit.params["points68"][0],
                             None)
    eye_ids = Conditioner.eye_vertices(geometry.source, geometry.points68)
    figures["conditioning"] = timed(lambda: conditioner.frame(geometry, eye_ids), repeat)

    # neural render at 256
    renderer = NedRenderer(checkpoint=str(workdir / "20_net_G.pth"), flame=str(flame_path), device=device,
                           rasterizer="torch")
    cond = torch.rand(1, 30, 256, 256, device=dev)
    previous = torch.zeros(1, 6, 256, 256, device=dev)

    def neural() -> object:
        with torch.no_grad():
            out = renderer.net(cond, previous)
        sync()
        return out

    figures["neural render"] = timed(neural, repeat)

    # blend: un-align, colour conversion, pyramid composite into the plate
    plate = np.random.default_rng(2).random((*PLATE, 4)).astype(np.float32)
    face = FrameFace(geometry.source, geometry.edited, shot_fit.triangles, shot_fit, 0, edited[0])
    rendered = renderer.render(plate, face)
    aligned = renderer.render_aligned(face)
    compositor = PyramidCompositor()
    render_total = timed(lambda: renderer.render(plate, face), max(1, repeat // 2))
    align_part = timed(lambda: renderer.render_aligned(face), max(1, repeat // 2))
    del aligned
    figures["blend"] = max(0.0, render_total - align_part) + timed(lambda: compositor.composite(plate, rendered),
                                                                  repeat)
    figures["total per frame"] = sum(v for k, v in figures.items() if not k.startswith("  "))
    return figures


def bench_rasterizer(repeat: int) -> dict[str, float]:
    """Seconds per 256-px rasterization of the FLAME-sized head: ours, and pytorch3d's if it imports."""
    head = head_model()
    verts = torch.from_numpy(head["v_template"] * np.array([1.0, -1.0, -1.0]) * 1100 + [128, 128, 0])
    faces = torch.from_numpy(head["f"])
    out = {"ours (torch)": timed(lambda: rasterize(verts, faces, 256, 256, backend="torch"), repeat)}
    if has_pytorch3d():
        out["pytorch3d"] = timed(lambda: rasterize(verts, faces, 256, 256, backend="pytorch3d"), repeat)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=5, help="timed repeats per stage (median)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
        for device in devices:
            results[device] = bench(device, args.frames, Path(tmp))
    results["rasterizer 256 px"] = bench_rasterizer(args.frames)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads"
          + (f", {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ", no CUDA device")
          + ("" if has_pytorch3d() else ", pytorch3d not installed"))
    for group, figures in results.items():
        print(f"\n{group} (seconds per frame)")
        for stage, seconds in figures.items():
            print(f"  {stage:<22} {seconds:8.4f}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
