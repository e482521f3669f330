"""Train a per-actor neural face renderer on the actor's own footage (``ned train renderer``).

**Data** (``prepare``): each shot is tracked and fitted with the ``deca`` face model; every found frame
gives, in the aligned space, the conditioning the renderer will see at edit time (``conditioning.py``,
drawn from the frame's own, unedited geometry: self-reconstruction) and the target, the frame's face
(display-referred sRGB) inside its mask. Runs of found frames are cut into sequences of ``seq_len``
(50) frames, a shorter tail is dropped, as NED does. The folder layout is NED's:
``{faces,nmfcs,shapes,masks}_aligned/<seq>/<frame>.png`` and ``eye_landmarks_aligned/<seq>/<frame>.txt``
(12 eyelid points, 2 pupils, 20 mouth points), so NED-preprocessed folders train too.

**Training** follows NED's renderer (Head2Head / vid2vid, reference §2.2): the generator sees 3 frames
of conditioning and its 2 previous outputs (detached: truncated backpropagation), frames go in chunks
of 4 with one G and one D update per chunk; the number of frames per sequence starts at 12 and
doubles every ``niter_step`` epochs up to 48. Losses: LSGAN on a 2-scale PatchGAN ``D`` (current
frame's conditioning + image) and on a mouth ``Dm`` (72-px crops around the mouth); feature matching
(x10, scaled 4/(n_layers+1)/num_D); VGG19 perceptual (x10; switched off with a warning when no VGG19
weights are given). D = (real + fake) / 2 for each of D and Dm. Adam lr 2e-4, betas (0.5, 0.999).
Augmentation: a random affine (translate 1 %, scale 0.99-1.01) on the NMFC, eye and shape images,
and pupil-disk jitter (radius 2 %, eye distance +-2 px). ``load_pretrain`` fine-tunes NED's
meta-renderer (``{which_epoch}_net_{G,D,Dm}.pth``). NED's optional eye discriminator is not built.

**Checkpoints** in NED's layout: ``latest_net_{G,D,Dm}.pth`` every ``save_latest_freq`` steps and
``{epoch}_net_{G,D,Dm}.pth`` every ``save_epoch_freq`` epochs and at the end; ``latest_optims.pth``
and ``latest_state.json`` let ``resume`` continue exactly (runs resume at sequence boundaries).
``G/L1`` in the log is the mean absolute error of the output, for watching only (not a loss term).

Must not import zmq, msgpack or the engine.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from ned_core.errors import CorruptImageError, InputNotFoundError, InvalidOptionError, NoFaceError, OutputError
from ned_core.ned import checkpoints, landmarks, models
from ned_core.ned.conditioning import Conditioner, FrameGeometry
from ned_core.ned.renderer_nets import Generator, MultiscaleDiscriminator
from ned_core.ned.training import (
    ProgressFn,
    RunState,
    ScalarLog,
    linear_decay,
    set_lr,
    step_generator,
    write_options,
)
from ned_core.ned.vgg import VGGLoss, load_vgg19

FOLDERS = ("faces_aligned", "nmfcs_aligned", "shapes_aligned", "masks_aligned")
EYES = "eye_landmarks_aligned"

# -- data preparation -----------------------------------------------------------------------------------


def _write_png(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = np.clip(np.round(rgb * 255.0), 0, 255).astype(np.uint8)
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    if not cv2.imwrite(str(path), image):
        raise OutputError(f"cannot write {path}", path=str(path))


def prepare(shots: Iterable[str], out: str | Path, *, flame: str | None = None, deca: str | None = None,
            tracker: Any = None, modeller: Any = None, size: int = 256, seq_len: int = 50,
            colorspace: str | None = None, template: str | None = None,
            progress: Callable[[str, int, int], None] | None = None) -> int:
    """Write the training folders for ``shots`` (plates: movies or sequences) into ``out``.

    ``tracker`` and ``modeller`` default to the MediaPipe tracker and the ``deca`` face model.
    Returns the number of sequences written. Raises ``NoFaceError`` when no sequence of ``seq_len``
    found frames exists.
    """
    from ned_core import track as track_stage  # the pipeline's stage registry (no torch import)
    from ned_core.ned.face3d_deca import DecaFaceModeller
    from ned_core.ned.flame import load_flame, nmfc_vertex_colors
    from ned_core.pipeline import Shot, open_plate

    out = Path(out)
    tracker = tracker if tracker is not None else track_stage.get("mediapipe")
    modeller = modeller if modeller is not None else DecaFaceModeller(flame=flame, deca=deca)
    head = modeller.flame if hasattr(modeller, "flame") else load_flame(models.require("flame", option=flame))
    conditioner = Conditioner(head.faces.numpy(), nmfc_vertex_colors(head.v_template).numpy(), size=size,
                              template=landmarks.template_68(size, template or models.find("template")))
    n_seq = 0
    for shot_path in shots:
        with open_plate(Shot(plate=str(shot_path), colorspace=colorspace)) as plate:
            frames = list(plate.frames)
            image = _LastFrame(plate)
            face_track = tracker.track(frames, (image(f) for f in frames))
            fit = modeller.fit(face_track, images=image)
            found = np.asarray(fit.found, bool)
            ref = int(np.flatnonzero(found)[0]) if found.any() else 0
            eye_ids = Conditioner.eye_vertices(fit.to_image(ref, fit.local_shape(ref)), fit.params["points68"][ref])
            runs = _runs(found)
            for run_start, run_end in runs:
                for seq_start in range(run_start, run_end - seq_len + 1, seq_len):
                    for k, t in enumerate(range(seq_start, seq_start + seq_len)):
                        _write_frame(out, n_seq, k, fit, t, eye_ids, conditioner, image(frames[t]))
                    n_seq += 1
                    if progress is not None:
                        progress(str(shot_path), n_seq, len(frames))
    if n_seq == 0:
        raise NoFaceError(f"no run of {seq_len} frames with a face in the shots: nothing to train on",
                          field="seq_len")
    return n_seq


class _LastFrame:
    """Display-referred frames of a plate by number, keeping only the last one decoded (reads go in order)."""

    def __init__(self, plate: Any) -> None:
        self.plate = plate
        self.frame: int | None = None
        self.rgb8: np.ndarray | None = None

    def __call__(self, frame: int) -> np.ndarray:
        if frame != self.frame or self.rgb8 is None:
            self.frame, self.rgb8 = frame, self.plate.read(frame).display_rgb8()
        return self.rgb8


def _runs(found: np.ndarray) -> list[tuple[int, int]]:
    """(start, end) of every run of True in ``found``."""
    edges = np.diff(np.concatenate([[0], found.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True))


def _write_frame(out: Path, seq: int, k: int, fit: Any, t: int, eye_ids: np.ndarray, conditioner: Conditioner,
                 rgb8: np.ndarray) -> None:
    source = fit.to_image(t, fit.local_shape(t))
    points68 = np.asarray(fit.params["points68"][t], np.float64)
    pupils = np.asarray(fit.params["pupils"][t], np.float64)
    if np.isnan(pupils).any():
        pupils = np.stack([points68[list(landmarks.RIGHT_EYE)].mean(0), points68[list(landmarks.LEFT_EYE)].mean(0)])
    cond = conditioner.frame(FrameGeometry(source, source, points68, pupils), eye_ids)
    size = conditioner.size
    face = cv2.warpAffine(rgb8, cond.align, (size, size), flags=cv2.INTER_LANCZOS4).astype(np.float32) / 255.0
    name = f"{seq:06d}/{k:06d}"
    _write_png(out / FOLDERS[0] / f"{name}.png", face * cond.mask[..., None])
    _write_png(out / FOLDERS[1] / f"{name}.png", cond.nmfc)
    _write_png(out / FOLDERS[2] / f"{name}.png", cond.shape)
    _write_png(out / FOLDERS[3] / f"{name}.png", cond.mask)
    rows = np.concatenate([points68[36:48], pupils, points68[48:68]])
    (out / EYES / f"{seq:06d}").mkdir(parents=True, exist_ok=True)
    np.savetxt(out / EYES / f"{name}.txt", landmarks.apply_2d(cond.align, rows), fmt="%.3f")


# -- the dataset ----------------------------------------------------------------------------------------


def _read_png(path: Path, gray: bool = False) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE if gray else cv2.IMREAD_COLOR)
    if image is None:
        raise CorruptImageError(f"cannot read training image {path}", path=str(path))
    return (image if gray else cv2.cvtColor(image, cv2.COLOR_BGR2RGB)).astype(np.float32) / 255.0


class RendererData:
    """The sequences of a prepared folder; frames are read from disk when a sequence is used."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        faces = self.root / FOLDERS[0]
        if not faces.is_dir():
            raise InputNotFoundError(f"no {FOLDERS[0]} folder in {self.root}: run the data preparation first",
                                     path=str(self.root))
        self.sequences = [sorted(p.stem for p in d.glob("*.png")) for d in sorted(faces.iterdir()) if d.is_dir()]
        self.names = [d.name for d in sorted(faces.iterdir()) if d.is_dir()]
        keep = [i for i, s in enumerate(self.sequences) if len(s) >= 3]
        self.sequences = [self.sequences[i] for i in keep]
        self.names = [self.names[i] for i in keep]
        if not self.sequences:
            raise InputNotFoundError(f"no sequence of >= 3 frames in {faces}", path=str(faces))
        first = _read_png(faces / self.names[0] / f"{self.sequences[0][0]}.png")
        self.size = first.shape[0]

    def __len__(self) -> int:
        return len(self.sequences)

    def load(self, index: int, start: int, count: int, gen: torch.Generator,
             augment: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Frames ``start .. start + count - 1`` of sequence ``index``.

        Returns (conditioning (count, 10, S, S), images (count, 3, S, S) in [-1, 1], mouth centres
        (count, 2) in pixels).
        """
        name, frames = self.names[index], self.sequences[index][start:start + count]
        conds, images, mouths = [], [], []
        for frame in frames:
            rel = f"{name}/{frame}.png"
            points = np.loadtxt(self.root / EYES / f"{name}/{frame}.txt", ndmin=2)
            eye = _eye_image(points, self.size, gen if augment else None)
            cond = np.concatenate([_read_png(self.root / FOLDERS[1] / rel), eye,
                                   _read_png(self.root / FOLDERS[2] / rel),
                                   _read_png(self.root / FOLDERS[3] / rel, gray=True)[..., None]], axis=2)
            conds.append(torch.from_numpy(cond).permute(2, 0, 1))
            images.append(torch.from_numpy(_read_png(self.root / FOLDERS[0] / rel)).permute(2, 0, 1) * 2 - 1)
            mouth = points[14:34] if len(points) >= 34 else points[:12]
            mouths.append(torch.from_numpy(np.median(mouth, axis=0)))
        cond_t = torch.stack(conds)
        if augment:
            cond_t[:, :9] = _random_affine(cond_t[:, :9], gen)
        return cond_t, torch.stack(images), torch.stack(mouths).float()


def _eye_image(points: np.ndarray, size: int, gen: torch.Generator | None) -> np.ndarray:
    """The eye-gaze image from 12 eyelid points and 2 pupils, with NED's pupil jitter when ``gen``."""
    image = np.zeros((size, size, 3), np.uint8)
    jitter = 0.0 if gen is None else float(torch.rand(1, generator=gen)) * 4.0 - 2.0
    for k in range(2):
        eye = points[6 * k:6 * k + 6]
        pupil = points[12 + k].copy()
        pupil[0] += (jitter / 2.0) * (1 if k else -1) * size / 256.0  # eye distance +-2 px
        radius = landmarks.eye_radius(eye)
        if gen is not None:
            radius *= 1.0 + (float(torch.rand(1, generator=gen)) * 2.0 - 1.0) * 0.02
        cv2.circle(image, (int(round(pupil[0] * 16)), int(round(pupil[1] * 16))), int(round(radius * 16)),
                   (255, 0, 0), thickness=-1, lineType=cv2.LINE_AA, shift=4)
    return image.astype(np.float32) / 255.0


def _random_affine(images: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """A fresh random translate (1 %) and scale (0.99-1.01) per frame, bilinear, zeros outside."""
    n = images.shape[0]
    scale = 0.99 + 0.02 * torch.rand(n, generator=gen)
    shift = (torch.rand(n, 2, generator=gen) * 2 - 1) * 0.02  # 1 % of the side = 0.02 in [-1, 1] units
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = 1.0 / scale
    theta[:, :, 2] = shift
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


# -- losses ---------------------------------------------------------------------------------------------


def gan_loss(predictions: list[list[torch.Tensor]], real: bool) -> torch.Tensor:
    """LSGAN over every scale's last map: (x - 1)^2 for real, x^2 for fake."""
    target = 1.0 if real else 0.0
    return sum(((scale[-1] - target) ** 2).mean() for scale in predictions)  # type: ignore[return-value]


def feature_matching(fake: list[list[torch.Tensor]], real: list[list[torch.Tensor]], n_layers: int,
                     weight: float) -> torch.Tensor:
    """L1 between D's intermediate features of fake and real, weighted as pix2pixHD / NED."""
    scale_w, layer_w = 1.0 / len(fake), 4.0 / (n_layers + 1)
    loss = fake[0][0].new_zeros(())
    for f_scale, r_scale in zip(fake, real, strict=True):
        for f, r in zip(f_scale[:-1], r_scale[:-1], strict=True):
            loss = loss + scale_w * layer_w * weight * F.l1_loss(f, r.detach())
    return loss


def mouth_crops(images: torch.Tensor, centres: torch.Tensor, roi: int) -> torch.Tensor:
    """(N, C, roi, roi) crops centred on each frame's mouth, kept inside the frame."""
    size = images.shape[-1]
    crops = []
    for image, (cx, cy) in zip(images, centres.tolist(), strict=True):
        x0 = int(min(max(round(cx) - roi // 2, 0), size - roi))
        y0 = int(min(max(round(cy) - roi // 2, 0), size - roi))
        crops.append(image[:, y0:y0 + roi, x0:x0 + roi])
    return torch.stack(crops)


# -- the run --------------------------------------------------------------------------------------------


@dataclass
class RendererTrainConfig:
    """Everything a run depends on (written to ``opt.txt``); defaults are NED's."""

    data: str
    out: str
    niter: int = 20
    niter_decay: int = 0
    niter_step: int = 5
    n_frames_total: int = 12
    max_frames_total: int = 48
    max_frames_per_gpu: int = 4
    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    lambda_feat: float = 10.0
    lambda_vgg: float = 10.0
    lambda_mouth: float = 1.0
    roi_size: int = 72
    seed: int = 0
    save_latest_freq: int = 100
    save_epoch_freq: int = 10
    log_dir: str | None = None
    load_pretrain: str | None = None
    which_epoch: str = "15"
    vgg: str | None = None
    augment: bool = True
    max_steps: int | None = None
    device: str = "cpu"
    # Network sizes (NED's); a pretrained renderer's own sizes win.
    ngf: int = 64
    n_downsample: int = 3
    n_blocks: int = 9
    ndf: int = 64
    n_layers_D: int = 3
    num_D: int = 2


class RendererTrainer:
    """One training run: ``RendererTrainer(cfg).train(resume=False)``."""

    def __init__(self, cfg: RendererTrainConfig) -> None:
        if cfg.niter + cfg.niter_decay < 1 or cfg.max_frames_per_gpu < 1:
            raise InvalidOptionError("need niter + niter_decay >= 1 and max_frames_per_gpu >= 1", field="niter")
        self.cfg = cfg
        self.out = Path(cfg.out)
        self.device = torch.device(cfg.device)
        self.data = RendererData(cfg.data)
        torch.manual_seed(cfg.seed)
        self.roi = max(8, round(cfg.roi_size * self.data.size / 256))
        if cfg.load_pretrain is not None:
            pre = Path(cfg.load_pretrain)
            self.G = checkpoints.load_renderer(pre / f"{cfg.which_epoch}_net_G.pth")
            self.D = checkpoints.load_renderer_discriminator(pre / f"{cfg.which_epoch}_net_D.pth")
            self.Dm = checkpoints.load_renderer_discriminator(pre / f"{cfg.which_epoch}_net_Dm.pth")
        else:
            self.G = Generator(ngf=cfg.ngf, n_downsample=cfg.n_downsample, n_blocks=cfg.n_blocks)
            self.D = MultiscaleDiscriminator(ndf=cfg.ndf, n_layers=cfg.n_layers_D, num_D=cfg.num_D)
            self.Dm = MultiscaleDiscriminator(ndf=cfg.ndf, n_layers=cfg.n_layers_D, num_D=cfg.num_D)
        if self.data.size % 2 ** sum(isinstance(m, torch.nn.ConvTranspose2d) for m in self.G.model_up_img):
            raise InvalidOptionError(f"the training images ({self.data.size} px) do not suit the generator's "
                                     "down-sampling", field="data")
        for net in (self.G, self.D, self.Dm):
            net.to(self.device).train()
        self.vgg = self._vgg()
        betas = (cfg.beta1, cfg.beta2)
        self.optim_G = torch.optim.Adam(self.G.parameters(), cfg.lr, betas)
        self.optim_D = torch.optim.Adam(list(self.D.parameters()) + list(self.Dm.parameters()), cfg.lr, betas)

    def _vgg(self) -> VGGLoss | None:
        path = self.cfg.vgg if self.cfg.vgg is not None else models.find("vgg19")
        if path is None:
            warnings.warn("no VGG19 weights given (--vgg or $NED_MODELS/vgg/vgg19.pth): training without the "
                          "perceptual loss", stacklevel=3)
            return None
        return VGGLoss(load_vgg19(path)).to(self.device)

    def frames_total(self, epoch: int) -> int:
        """Frames generated per sequence in ``epoch`` (NED's doubling curriculum)."""
        cfg = self.cfg
        return min(cfg.max_frames_total, cfg.n_frames_total * 2 ** (epoch // max(1, cfg.niter_step)))

    def _sequence_steps(self, epoch: int, index: int) -> int:
        n = min(self.frames_total(epoch), len(self.data.sequences[index]) - 2)
        return -(-n // self.cfg.max_frames_per_gpu)

    @property
    def total_steps(self) -> int:
        epochs = range(self.cfg.niter + self.cfg.niter_decay)
        total = sum(self._sequence_steps(e, i) for e in epochs for i in range(len(self.data)))
        return min(total, self.cfg.max_steps) if self.cfg.max_steps is not None else total

    # -- checkpoints --
    def save(self, name: str) -> None:
        for label, net in (("G", self.G), ("D", self.D), ("Dm", self.Dm)):
            checkpoints.save_renderer(self.out / f"{name}_net_{label}.pth", net)

    def _save_latest(self, state: RunState) -> None:
        self.save("latest")
        checkpoints.atomic_save({"G": self.optim_G.state_dict(), "D": self.optim_D.state_dict()},
                                self.out / "latest_optims.pth")
        state.save(self.out)

    def _resume(self) -> RunState:
        state = RunState.load(self.out)
        if state is None:
            warnings.warn(f"nothing to resume in {self.out}: starting from scratch", stacklevel=3)
            return RunState()
        for label, net in (("G", self.G), ("D", self.D), ("Dm", self.Dm)):
            checkpoints.load_into(self.out / f"latest_net_{label}.pth", {"": net},
                                  help_text="resume needs the latest_net files of the run",
                                  what="renderer checkpoint")
        optims = checkpoints.read_checkpoint(self.out / "latest_optims.pth", "optimiser state",
                                             "resume needs latest_optims.pth of the run")
        self.optim_G.load_state_dict(optims["G"])
        self.optim_D.load_state_dict(optims["D"])
        return state

    # -- one chunk of frames --
    def step(self, cond: torch.Tensor, real: torch.Tensor, mouths: torch.Tensor,
             previous: torch.Tensor) -> tuple[dict[str, float], torch.Tensor]:
        """Generate ``len(real)`` frames from ``cond`` (2 more frames, oldest first), update G then D.

        Returns the scalars and the new previous outputs (detached).
        """
        cfg, n_frames = self.cfg, self.G.n_frames
        fakes = []
        for k in range(len(real)):
            out = self.G(cond[k:k + n_frames].reshape(1, -1, *cond.shape[2:]), previous)
            previous = torch.cat([previous[:, out.shape[1]:], out.detach()], dim=1)
            fakes.append(out)
        fake = torch.cat(fakes)
        current = cond[n_frames - 1:]
        cond_m = mouth_crops(current, mouths, self.roi)
        real_m, fake_m = mouth_crops(real, mouths, self.roi), mouth_crops(fake, mouths, self.roi)

        pred_real = self.D(torch.cat([current, real], 1))
        pred_real_m = self.Dm(torch.cat([cond_m, real_m], 1))
        pred_fake_g = self.D(torch.cat([current, fake], 1))
        pred_fake_gm = self.Dm(torch.cat([cond_m, fake_m], 1))
        g_gan = gan_loss(pred_fake_g, True)
        g_feat = feature_matching(pred_fake_g, pred_real, self.D.n_layers, cfg.lambda_feat)
        gm_gan = cfg.lambda_mouth * gan_loss(pred_fake_gm, True)
        gm_feat = cfg.lambda_mouth * feature_matching(pred_fake_gm, pred_real_m, self.Dm.n_layers, cfg.lambda_feat)
        g_vgg = cfg.lambda_vgg * self.vgg(fake, real) if self.vgg is not None else fake.new_zeros(())
        loss_g = g_gan + g_feat + g_vgg + gm_gan + gm_feat
        self.optim_G.zero_grad()
        loss_g.backward()
        self.optim_G.step()

        pred_fake = self.D(torch.cat([current, fake.detach()], 1))
        pred_fake_m = self.Dm(torch.cat([cond_m, fake_m.detach()], 1))
        d_real, d_fake = gan_loss(pred_real, True), gan_loss(pred_fake, False)
        dm_real, dm_fake = gan_loss(pred_real_m, True), gan_loss(pred_fake_m, False)
        loss_d = 0.5 * (d_real + d_fake) + 0.5 * (dm_real + dm_fake)
        self.optim_D.zero_grad()
        loss_d.backward()
        self.optim_D.step()
        scalars = {"G/GAN": g_gan.item(), "G/GAN_Feat": g_feat.item(), "G/VGG": float(g_vgg),
                   "G/mouth_GAN": gm_gan.item(), "G/mouth_GAN_Feat": gm_feat.item(), "G/total": loss_g.item(),
                   "D/real": d_real.item(), "D/fake": d_fake.item(), "D/mouth_real": dm_real.item(),
                   "D/mouth_fake": dm_fake.item(), "G/L1": F.l1_loss(fake.detach(), real).item()}
        return scalars, previous

    def train(self, resume: bool = False, progress: ProgressFn | None = None) -> Path:
        """Run to the end (or ``max_steps``); returns the directory of the checkpoints."""
        cfg = self.cfg
        state = self._resume() if resume else RunState()
        write_options(self.out, cfg)
        log = ScalarLog(cfg.log_dir or self.out / "logs", append=resume)
        last_save = state.step
        n_prev = self.G.model_down_img[1].in_channels
        size = self.data.size
        try:
            for epoch in range(state.epoch, cfg.niter + cfg.niter_decay):
                lr = cfg.lr * linear_decay(epoch, cfg.niter, cfg.niter_decay)
                set_lr(self.optim_G, lr)
                set_lr(self.optim_D, lr)
                order = torch.randperm(len(self.data), generator=step_generator(cfg.seed, epoch, 1)).tolist()
                first = state.iteration if epoch == state.epoch else 0
                for it in range(first, len(order)):
                    seq = order[it]
                    gen = step_generator(cfg.seed, epoch * 1_000_003 + it, 2)
                    length = len(self.data.sequences[seq])
                    n_total = min(self.frames_total(epoch), length - 2)
                    start = int(torch.randint(0, length - n_total - 1, (1,), generator=gen))
                    cond, real, mouths = self.data.load(seq, start, n_total + 2, gen, cfg.augment)
                    cond, real, mouths = cond.to(self.device), real[2:].to(self.device), mouths[2:]
                    previous = torch.zeros(1, n_prev, size, size, device=self.device)
                    for c0 in range(0, n_total, cfg.max_frames_per_gpu):
                        c1 = min(c0 + cfg.max_frames_per_gpu, n_total)
                        scalars, previous = self.step(cond[c0:c1 + 2], real[c0:c1], mouths[c0:c1], previous)
                        scalars["lr"] = lr
                        state = RunState(epoch, it, state.step + 1)
                        log.write(state.step, scalars)
                        if progress is not None:
                            progress(state.step, self.total_steps, scalars)
                    state = RunState(epoch, it + 1, state.step)
                    stop = cfg.max_steps is not None and state.step >= cfg.max_steps
                    if state.step - last_save >= max(1, cfg.save_latest_freq) or stop:
                        self._save_latest(state)
                        last_save = state.step
                    if stop:
                        return self.out
                state = RunState(epoch + 1, 0, state.step)
                last_epoch = epoch + 1 == cfg.niter + cfg.niter_decay
                if (epoch + 1) % max(1, cfg.save_epoch_freq) == 0 or last_epoch:
                    self.save(str(epoch + 1))
                self._save_latest(state)
                last_save = state.step
        finally:
            log.close()
        return self.out


def train(cfg: RendererTrainConfig, resume: bool = False, progress: ProgressFn | None = None) -> Path:
    """Train a renderer with ``cfg`` (see the module docstring); returns the checkpoint directory."""
    return RendererTrainer(cfg).train(resume=resume, progress=progress)
