"""Train NED's emotion manipulator on labelled clips of DECA codes (``ned train manipulator``).

Data: ``<data>/<emotion>/<clip>``, one folder per emotion named as ``ned_core.EMOTIONS`` (neutral,
angry, disgusted, fear, happy, sad, surprised), each clip a folder of per-frame DECA codes (NED
pickles, our ``.npz``/``.json``) or one clip ``.npz`` (``deca_codes.write_clip``). Every 10-frame
window (hop 1) of every clip is a sample ``[jaw pose[3], exp 0..49]`` with its clip's label.

The recipe is NED's (StarGAN v2 on sequences, reference §2.1): per iteration a batch of source
windows and a second, independently shuffled batch of reference windows (the target labels), and
four passes: D on the latent pass, D on the reference pass, G on the latent pass (updates G, the
mapping network F and the style encoder E), G on the reference pass (updates G only).
LSGAN adversarial losses; style reconstruction L1 (x1); cycle L1 over all 51 coefficients (x1); the
mouth loss subtracts the Pearson correlation over time of the jaw coefficient between real and fake
and between fake and reconstruction (x1). Adam, lr 1e-4 (F: 1e-4), betas (0, 0.99); ``niter``
epochs at that rate then ``niter_decay`` epochs of linear decay; seed 777.

Checkpoints follow NED: ``{epoch:02d}_nets.pth`` / ``_optims.pth`` after each epoch (with
``finetune`` set, ``_nets_finetuned.pth``); ``latest_nets.pth``, ``latest_optims.pth`` and
``latest_state.json`` every ``save_every`` steps, from which ``resume`` continues exactly.

Must not import zmq, msgpack or the engine.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ned_core import EMOTIONS
from ned_core.errors import InputNotFoundError, InvalidOptionError
from ned_core.ned import checkpoints, deca_codes
from ned_core.ned.manipulator_nets import SEQ_LEN, Discriminator, Generator, MappingNetwork, StyleEncoder
from ned_core.ned.training import (
    ProgressFn,
    RunState,
    ScalarLog,
    linear_decay,
    set_lr,
    step_generator,
    write_options,
)


@dataclass
class ManipulatorTrainConfig:
    """Everything a run depends on (written to ``opt.txt``); defaults are NED's."""

    data: str
    out: str
    niter: int = 10
    niter_decay: int = 10
    batch_size: int = 64
    lr: float = 1e-4
    f_lr: float = 1e-4
    beta1: float = 0.0
    beta2: float = 0.99
    lambda_sty: float = 1.0
    lambda_cyc: float = 1.0
    lambda_mouth: float = 1.0
    seed: int = 777
    save_every: int = 500
    log_dir: str | None = None
    finetune: str | None = None
    max_steps: int | None = None
    device: str = "cpu"
    # Network sizes (NED's); smaller ones make a quick test model.
    latent_dim: int = 4
    style_dim: int = 16
    mapping_hidden: int = 64
    generator_hidden: int = 512
    generator_lstm: int = 512
    encoder_hidden: tuple[int, int] = (512, 256)
    encoder_lstm: int = 128
    encoder_head: tuple[int, int] = (128, 64)


# -- data -----------------------------------------------------------------------------------------------


def load_clips(root: str | Path) -> list[tuple[np.ndarray, int]]:
    """Every labelled clip under ``root``: ((T, 51) float32 frames, label index), clips of >= 10 frames."""
    root = Path(root)
    if not root.is_dir():
        raise InputNotFoundError(f"training data folder not found: {root}", path=str(root))
    clips = []
    for label, emotion in enumerate(EMOTIONS):
        folder = root / emotion
        if not folder.is_dir():
            continue
        for clip in sorted(p for p in folder.iterdir() if p.is_dir() or p.suffix == ".npz"):
            frames = deca_codes.manipulator_frames(deca_codes.read_clip(clip))
            if len(frames) >= SEQ_LEN:
                clips.append((frames, label))
    if not clips:
        raise InputNotFoundError(f"no clips of >= {SEQ_LEN} frames in {root}/<emotion>/ (emotions: "
                                 f"{', '.join(EMOTIONS)})", path=str(root))
    return clips


class WindowSet:
    """All 10-frame windows (hop 1) of the clips, as one (N, 10, 51) tensor and (N,) labels."""

    def __init__(self, clips: list[tuple[np.ndarray, int]]) -> None:
        windows, labels = [], []
        for frames, label in clips:
            idx = np.arange(SEQ_LEN)[None] + np.arange(len(frames) - SEQ_LEN + 1)[:, None]
            windows.append(frames[idx])
            labels.append(np.full(len(idx), label, np.int64))
        self.x = torch.from_numpy(np.concatenate(windows)).float()
        self.y = torch.from_numpy(np.concatenate(labels))

    def __len__(self) -> int:
        return len(self.y)


# -- losses ---------------------------------------------------------------------------------------------


def pearson(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Mean over the batch of the Pearson correlation over time of (B, T) series ``a`` and ``b``."""
    a = a - a.mean(dim=1, keepdim=True)
    b = b - b.mean(dim=1, keepdim=True)
    return ((a * b).sum(dim=1) / (a.norm(dim=1) * b.norm(dim=1) + eps)).mean()


class Nets:
    """The four networks of a manipulator."""

    def __init__(self, cfg: ManipulatorTrainConfig) -> None:
        self.generator = Generator(style_dim=cfg.style_dim, hidden_dim=cfg.generator_hidden,
                                   lstm_dim=cfg.generator_lstm)
        self.mapping_network = MappingNetwork(cfg.latent_dim, cfg.mapping_hidden, cfg.style_dim, len(EMOTIONS))
        enc = {"hidden_dims": tuple(cfg.encoder_hidden), "lstm_dim": cfg.encoder_lstm,
               "head_dims": tuple(cfg.encoder_head)}
        self.style_encoder = StyleEncoder(style_dim=cfg.style_dim, **enc)
        self.discriminator = Discriminator(num_domains=len(EMOTIONS), **enc)

    def all(self) -> dict[str, torch.nn.Module]:
        return {"generator": self.generator, "mapping_network": self.mapping_network,
                "style_encoder": self.style_encoder, "discriminator": self.discriminator}


def d_loss(nets: Nets, x_real: torch.Tensor, y_org: torch.Tensor, y_trg: torch.Tensor,
           s_trg: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
    """LSGAN discriminator loss: real windows toward 1, translated ones toward 0."""
    real = nets.discriminator(x_real, y_org)
    with torch.no_grad():
        x_fake = nets.generator(x_real, s_trg)
    fake = nets.discriminator(x_fake, y_trg)
    loss_real, loss_fake = ((real - 1) ** 2).mean(), (fake ** 2).mean()
    return loss_real + loss_fake, {"real": loss_real.item(), "fake": loss_fake.item()}


def g_loss(nets: Nets, cfg: ManipulatorTrainConfig, x_real: torch.Tensor, y_trg: torch.Tensor,
           s_trg: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
    """Generator loss: adversarial + style reconstruction + cycle - mouth correlation."""
    x_fake = nets.generator(x_real, s_trg)
    adv = ((nets.discriminator(x_fake, y_trg) - 1) ** 2).mean()
    sty = F.l1_loss(nets.style_encoder(x_fake), s_trg)
    x_rec = nets.generator(x_fake, nets.style_encoder(x_real))
    cyc = F.l1_loss(x_rec, x_real)
    mouth = pearson(x_real[:, :, 0], x_fake[:, :, 0]) + pearson(x_fake[:, :, 0], x_rec[:, :, 0])
    total = adv + cfg.lambda_sty * sty + cfg.lambda_cyc * cyc - cfg.lambda_mouth * mouth
    return total, {"adv": adv.item(), "sty": sty.item(), "cyc": cyc.item(), "mouth": mouth.item(),
                   "total": total.item()}


# -- the run --------------------------------------------------------------------------------------------


class ManipulatorTrainer:
    """One training run: ``ManipulatorTrainer(cfg).train(resume=False)``."""

    def __init__(self, cfg: ManipulatorTrainConfig) -> None:
        if cfg.batch_size < 1 or cfg.niter < 0 or cfg.niter_decay < 0 or cfg.niter + cfg.niter_decay < 1:
            raise InvalidOptionError("need batch_size >= 1 and niter + niter_decay >= 1", field="niter")
        self.cfg = cfg
        self.out = Path(cfg.out)
        self.device = torch.device(cfg.device)
        self.data = WindowSet(load_clips(cfg.data))
        torch.manual_seed(cfg.seed)  # the networks' initial weights
        self.nets = Nets(cfg)
        if cfg.finetune is not None:
            self._load_nets(Path(cfg.finetune))
        for net in self.nets.all().values():
            net.to(self.device).train()
        betas = (cfg.beta1, cfg.beta2)
        self.optims = {
            "generator": torch.optim.Adam(self.nets.generator.parameters(), cfg.lr, betas),
            "mapping_network": torch.optim.Adam(self.nets.mapping_network.parameters(), cfg.f_lr, betas),
            "style_encoder": torch.optim.Adam(self.nets.style_encoder.parameters(), cfg.lr, betas),
            "discriminator": torch.optim.Adam(self.nets.discriminator.parameters(), cfg.lr, betas),
        }
        self.suffix = "_finetuned" if cfg.finetune is not None else ""
        self.batch = min(cfg.batch_size, len(self.data))
        self.epoch_steps = len(self.data) // self.batch

    @property
    def total_steps(self) -> int:
        total = (self.cfg.niter + self.cfg.niter_decay) * self.epoch_steps
        return min(total, self.cfg.max_steps) if self.cfg.max_steps is not None else total

    # -- checkpoints --
    def _load_nets(self, path: Path) -> None:
        contents = checkpoints.read_checkpoint(path, "NED manipulator checkpoint", checkpoints.MANIPULATOR_HELP)
        checkpoints.load_into(path, {k: v for k, v in self.nets.all().items() if k != "discriminator"},
                              optional={"discriminator": self.nets.discriminator},
                              help_text=checkpoints.MANIPULATOR_HELP, what="NED manipulator checkpoint",
                              contents=contents)

    def save(self, name: str) -> None:
        checkpoints.save_manipulator(self.out / f"{name}_nets{self.suffix}.pth", self.nets.generator,
                                     self.nets.mapping_network, self.nets.style_encoder,
                                     self.nets.discriminator)
        checkpoints.atomic_save({k: o.state_dict() for k, o in self.optims.items()},
                                self.out / f"{name}_optims{self.suffix}.pth")

    def _resume(self) -> RunState:
        state = RunState.load(self.out)
        if state is None:
            warnings.warn(f"nothing to resume in {self.out}: starting from scratch", stacklevel=3)
            return RunState()
        self._load_nets(self.out / f"latest_nets{self.suffix}.pth")
        optims = checkpoints.read_checkpoint(self.out / f"latest_optims{self.suffix}.pth", "optimiser state",
                                             "resume needs the latest_optims file written beside latest_nets")
        for key, optim in self.optims.items():
            optim.load_state_dict(optims[key])
        return state

    # -- one iteration --
    def step(self, x_real: torch.Tensor, y_org: torch.Tensor, x_ref: torch.Tensor, y_trg: torch.Tensor,
             z_trg: torch.Tensor) -> dict[str, float]:
        """The four passes of one iteration; returns its scalars."""
        nets, optims, cfg = self.nets, self.optims, self.cfg
        scalars: dict[str, float] = {}
        for name, style in (("latent", lambda: nets.mapping_network(z_trg, y_trg)),
                            ("ref", lambda: nets.style_encoder(x_ref))):
            with torch.no_grad():
                s_trg = style()
            loss, parts = d_loss(nets, x_real, y_org, y_trg, s_trg)
            optims["discriminator"].zero_grad()
            loss.backward()
            optims["discriminator"].step()
            scalars.update({f"D/{name}_{k}": v for k, v in parts.items()})
        for name, style, updated in (
                ("latent", lambda: nets.mapping_network(z_trg, y_trg),
                 ("generator", "mapping_network", "style_encoder")),
                ("ref", lambda: nets.style_encoder(x_ref), ("generator",))):
            loss, parts = g_loss(nets, cfg, x_real, y_trg, style())
            for key in optims:
                optims[key].zero_grad()
            loss.backward()
            for key in updated:
                optims[key].step()
            scalars.update({f"G/{name}_{k}": v for k, v in parts.items()})
        return scalars

    def _batch(self, order: torch.Tensor, it: int) -> tuple[torch.Tensor, torch.Tensor]:
        idx = order[it * self.batch:(it + 1) * self.batch]
        return self.data.x[idx].to(self.device), self.data.y[idx].to(self.device)

    def train(self, resume: bool = False, progress: ProgressFn | None = None) -> Path:
        """Run to the end (or ``max_steps``); returns the directory of the checkpoints."""
        cfg = self.cfg
        state = self._resume() if resume else RunState()
        write_options(self.out, cfg)
        log = ScalarLog(cfg.log_dir or self.out / "logs", append=resume)
        try:
            for epoch in range(state.epoch, cfg.niter + cfg.niter_decay):
                factor = linear_decay(epoch, cfg.niter, cfg.niter_decay)
                for key, optim in self.optims.items():
                    set_lr(optim, (cfg.f_lr if key == "mapping_network" else cfg.lr) * factor)
                order_src = torch.randperm(len(self.data), generator=step_generator(cfg.seed, epoch, 1))
                order_ref = torch.randperm(len(self.data), generator=step_generator(cfg.seed, epoch, 2))
                first = state.iteration if epoch == state.epoch else 0
                for it in range(first, self.epoch_steps):
                    x_real, y_org = self._batch(order_src, it)
                    x_ref, y_trg = self._batch(order_ref, it)
                    z_trg = torch.randn(len(x_real), cfg.latent_dim,
                                        generator=step_generator(cfg.seed, state.step, 3)).to(self.device)
                    scalars = self.step(x_real, y_org, x_ref, y_trg, z_trg)
                    scalars["lr"] = cfg.lr * factor
                    state = RunState(epoch, it + 1, state.step + 1)
                    log.write(state.step, scalars)
                    if progress is not None:
                        progress(state.step, self.total_steps, scalars)
                    stop = cfg.max_steps is not None and state.step >= cfg.max_steps
                    if state.step % max(1, cfg.save_every) == 0 or stop:
                        self._save_latest(state)
                    if stop:
                        return self.out
                self.save(f"{epoch + 1:02d}")
                state = RunState(epoch + 1, 0, state.step)
                self._save_latest(state)
        finally:
            log.close()
        return self.out

    def _save_latest(self, state: RunState) -> None:
        self.save("latest")
        state.save(self.out)


def train(cfg: ManipulatorTrainConfig, resume: bool = False, progress: ProgressFn | None = None) -> Path:
    """Train a manipulator with ``cfg`` (see the module docstring); returns the checkpoint directory."""
    return ManipulatorTrainer(cfg).train(resume=resume, progress=progress)

