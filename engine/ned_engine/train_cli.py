"""``ned train manipulator ...`` and ``ned train renderer ...``: the NED backend's trainers from a terminal.

``ned train manipulator DATA --out DIR``: DATA holds ``<emotion>/<clip>`` folders (or clip ``.npz``) of
DECA codes. ``ned train renderer SHOT [SHOT ...] --out DIR``: prepares the actor's own shots (tracking
and DECA fit, written under ``DIR/data``) unless ``--data`` names a prepared folder, then trains; with
``--load-pretrain`` it fine-tunes NED's meta-renderer. Both show a progress bar, log scalars to
``DIR/logs/scalars.jsonl``, checkpoint in NED's layout and continue with ``--resume``.

Wired into ``ned_engine.cli`` by ``add_parser``; handlers return the exit code.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from ned_core.errors import InvalidOptionError

if TYPE_CHECKING:
    from ned_core.ned.training import TextProgress


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Add ``train manipulator`` and ``train renderer`` to the ``ned`` command's subparsers."""
    train = subparsers.add_parser("train", help="train the NED manipulator or a per-actor renderer")
    which = train.add_subparsers(dest="train_command", required=True)

    m = which.add_parser("manipulator", help="train the emotion manipulator on labelled clips of DECA codes")
    m.add_argument("data", help="folder of <emotion>/<clip> DECA codes (neutral, angry, ... surprised)")
    m.add_argument("--out", "-o", required=True, help="checkpoint directory")
    m.add_argument("--niter", type=int, default=10, help="epochs at the full learning rate (10)")
    m.add_argument("--niter-decay", type=int, default=10, help="epochs of linear lr decay (10)")
    m.add_argument("--batch-size", type=int, default=64)
    m.add_argument("--lr", type=float, default=1e-4)
    m.add_argument("--finetune", help="start from this *_nets.pth and write *_nets_finetuned.pth")
    _common(m, seed=777, save_every=500)
    m.set_defaults(handler=run_train_manipulator)

    r = which.add_parser("renderer", help="train a renderer on the actor's own footage")
    r.add_argument("shots", nargs="*", help="the actor's shots (movies or image sequences)")
    r.add_argument("--out", "-o", required=True, help="checkpoint directory")
    r.add_argument("--data", help="an already prepared training folder (skips the preparation)")
    r.add_argument("--flame", help="FLAME model file (default from $NED_MODELS)")
    r.add_argument("--deca", help="DECA model file (default from $NED_MODELS)")
    r.add_argument("--colorspace", help="the shots' colourspace (default: inferred)")
    r.add_argument("--seq-len", type=int, default=50, help="frames per training sequence (50)")
    r.add_argument("--niter", type=int, default=20, help="epochs (20; NED recommends 60 from scratch)")
    r.add_argument("--niter-decay", type=int, default=0)
    r.add_argument("--load-pretrain", help="NED meta-renderer directory to fine-tune")
    r.add_argument("--which-epoch", default="15", help="epoch of the pretrained files (15)")
    r.add_argument("--vgg", help="VGG19 weights (torchvision's vgg19-dcbb9e9d.pth); without: no perceptual loss")
    r.add_argument("--save-latest-freq", type=int, default=100)
    r.add_argument("--save-epoch-freq", type=int, default=10)
    _common(r, seed=0, save_every=None)
    r.set_defaults(handler=run_train_renderer)


def _common(parser: argparse.ArgumentParser, seed: int, save_every: int | None) -> None:
    parser.add_argument("--seed", type=int, default=seed, help=f"random seed ({seed})")
    if save_every is not None:
        parser.add_argument("--save-every", type=int, default=save_every, help="steps between latest checkpoints")
    parser.add_argument("--log-dir", help="scalar log directory (default OUT/logs)")
    parser.add_argument("--max-steps", type=int, help="stop after this many steps")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out where it stopped")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress bar")


def _progress(args: argparse.Namespace, keys: tuple[str, ...]) -> TextProgress | None:
    from ned_core.ned.training import TextProgress

    return None if args.quiet else TextProgress(keys=keys)


def run_train_manipulator(args: argparse.Namespace) -> int:
    """Train the manipulator as ``args`` say; 0 when done."""
    from ned_core.ned.train_manipulator import ManipulatorTrainConfig, train

    cfg = ManipulatorTrainConfig(data=args.data, out=args.out, niter=args.niter, niter_decay=args.niter_decay,
                                 batch_size=args.batch_size, lr=args.lr, f_lr=args.lr, seed=args.seed,
                                 save_every=args.save_every, log_dir=args.log_dir, finetune=args.finetune,
                                 max_steps=args.max_steps, device=args.device)
    out = train(cfg, resume=args.resume, progress=_progress(args, ("G/latent_total", "D/latent_real")))
    print(f"manipulator checkpoints in {out}")
    return 0


def run_train_renderer(args: argparse.Namespace) -> int:
    """Prepare the shots (unless ``--data``) and train a renderer; 0 when done."""
    from ned_core.ned.train_renderer import RendererTrainConfig, prepare, train

    data = Path(args.data) if args.data else Path(args.out) / "data"
    if not args.data and not args.resume:
        if not args.shots:
            raise InvalidOptionError("give the actor's shots to prepare, or --data with a prepared folder",
                                     field="shots")
        count = prepare(args.shots, data, flame=args.flame, deca=args.deca, seq_len=args.seq_len,
                        colorspace=args.colorspace,
                        progress=None if args.quiet else (lambda shot, n, _: print(f"prepared {n} sequences "
                                                                                     f"({shot})")))
        print(f"prepared {count} training sequences in {data}")
    cfg = RendererTrainConfig(data=str(data), out=args.out, niter=args.niter, niter_decay=args.niter_decay,
                              seed=args.seed, save_latest_freq=args.save_latest_freq,
                              save_epoch_freq=args.save_epoch_freq, log_dir=args.log_dir,
                              load_pretrain=args.load_pretrain, which_epoch=args.which_epoch, vgg=args.vgg,
                              max_steps=args.max_steps, device=args.device)
    out = train(cfg, resume=args.resume, progress=_progress(args, ("G/total", "G/L1")))
    print(f"renderer checkpoints in {out}")
    return 0
