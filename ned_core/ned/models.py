"""Where the NED backend's model files live, what each one is, where it comes from and its licence.

Every file sits under one directory, ``$NED_MODELS`` (default ``~/.ned/models``), with fixed names:

==================================================  ==========================================================
``flame/generic_model.pkl``                         FLAME 2020 head model (face3d ``deca``, manipulate and
                                                    render ``ned``)
``deca/deca_model.tar``                             DECA's trained encoders (face3d ``deca``)
``manipulator/NN_nets_finetuned.pth``               NED's emotion manipulator (manipulate ``ned``)
``renderer/<actor>/NN_net_G.pth``                   a per-actor neural renderer (render ``ned``)
``meta_renderer/NN_net_{G,D,Dm}.pth``               NED's meta-renderer, to fine-tune for a new actor
``vgg/vgg19.pth``                                   ImageNet VGG19 for the renderer's perceptual loss
``renderer/template.gz``                            NED's 68-point alignment template (optional)
==================================================  ==========================================================

``NN`` is an epoch number; the highest one found is used (``latest`` when no numbered file exists).
FLAME and DECA are registration-gated, non-commercial research models: NED never ships them, the
user fetches them after accepting their licences. Backend options naming a file path always win over
this directory. Nothing here reads a model file; nothing is ever downloaded.

Must not import torch, zmq, msgpack or the engine (``ned models`` lists files without loading torch).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from ned_core.errors import MissingModelError

ENV = "NED_MODELS"
DEFAULT_DIR = Path("~/.ned/models")


@dataclass(frozen=True)
class ModelFile:
    """One model file the NED backend can use.

    ``pattern`` is relative to the models directory; ``*`` stands for an epoch number and ``{actor}``
    for the actor's name.
    """

    name: str
    pattern: str
    what: str
    used_by: str
    source: str
    licence: str
    required: bool = True


MODELS: tuple[ModelFile, ...] = (
    ModelFile(
        "flame", "flame/generic_model.pkl", "FLAME 2020 head model (shape 300, expression 100, jaw pose)",
        "face3d deca, manipulate ned, render ned",
        "register at https://flame.is.tue.mpg.de, accept the licence and download FLAME 2020 "
        "(it holds generic_model.pkl)",
        "FLAME licence: non-commercial scientific research only, registration required; check the current "
        "terms; never shipped with NED"),
    ModelFile(
        "deca", "deca/deca_model.tar", "DECA's trained encoders (the coarse encoder E_flame is used)",
        "face3d deca",
        "the deca_model.tar link in the README of https://github.com/yfeng95/DECA",
        "MPI non-commercial scientific research licence: no commercial use, no redistribution; "
        "never shipped with NED"),
    ModelFile(
        "manipulator", "manipulator/*_nets_finetuned.pth",
        "NED's emotion manipulator (generator, mapping network, style encoder)", "manipulate ned",
        "NED's released manipulator_checkpoints/02_nets_finetuned.pth (Google Drive link in the README of "
        "https://github.com/foivospar/NED), or your own from `ned train manipulator`",
        "NED's weights carry no licence statement (NED's code is MIT; its manipulator training follows "
        "StarGAN v2, CC BY-NC 4.0): treat them as research-only; your own trained file is yours"),
    ModelFile(
        "renderer", "renderer/{actor}/*_net_G.pth", "a per-actor neural face renderer (generator)",
        "render ned (option actor)",
        "`ned train renderer` on footage of the actor, or one of NED's released per-actor renderers "
        "(checkpoints_<actor>/20_net_G.pth, linked from NED's README)",
        "your own trained file is yours; NED's released renderers carry no licence statement "
        "(research use)"),
    ModelFile(
        "meta_renderer", "meta_renderer/*_net_G.pth",
        "NED's meta-renderer (G, plus D and Dm beside it), the starting point for a new actor",
        "ned train renderer --load-pretrain",
        "NED's released checkpoints_meta-renderer/15_net_{G,D,Dm}.pth (linked from NED's README)",
        "no licence statement (research use)", required=False),
    ModelFile(
        "vgg19", "vgg/vgg19.pth", "ImageNet VGG19 (torchvision's vgg19-dcbb9e9d.pth state dict)",
        "ned train renderer (perceptual loss; switched off with a warning when absent)",
        "fetch https://download.pytorch.org/models/vgg19-dcbb9e9d.pth on a connected machine and copy it "
        "here as vgg/vgg19.pth",
        "torchvision's pretrained weights (BSD-3 code; trained on ImageNet: check the terms for your use)",
        required=False),
    ModelFile(
        "template", "renderer/template.gz", "NED's 68-point alignment template (68 x 2, 256-px crop)",
        "render ned, ned train renderer (a built-in template approximates it when absent)",
        "preprocessing/files/template.gz in https://github.com/foivospar/NED",
        "MIT (NED's repository)", required=False),
)
"""Every model file the NED backend knows, in the order ``ned models`` lists them."""

_BY_NAME = {m.name: m for m in MODELS}


def models_dir() -> Path:
    """``$NED_MODELS``, else ``~/.ned/models`` (the directory need not exist)."""
    env = os.environ.get(ENV)
    return Path(env).expanduser() if env else DEFAULT_DIR.expanduser()


def entry(name: str) -> ModelFile:
    """The table entry called ``name`` (KeyError for an unknown name is a programming error)."""
    return _BY_NAME[name]


def _epoch_key(path: Path) -> tuple[int, int]:
    """Sort key: numbered epochs by number, ``latest`` below every number."""
    match = re.match(r"^(\d+)_", path.name)
    return (1, int(match.group(1))) if match else (0, 0)


def _expand(model: ModelFile, actor: str | None) -> str:
    if "{actor}" in model.pattern:
        return model.pattern.replace("{actor}", actor if actor is not None else "*")
    return model.pattern


def candidates(name: str, actor: str | None = None, root: Path | None = None) -> list[Path]:
    """Every existing file matching entry ``name`` (and ``actor``), best (highest epoch) last."""
    model = entry(name)
    root = models_dir() if root is None else root
    found = [p for p in root.glob(_expand(model, actor)) if p.is_file()]
    if "*" in Path(model.pattern).name and "latest" not in model.pattern:
        # A ``latest_...`` file counts where no numbered epoch exists (what a training run leaves).
        latest = Path(model.pattern).name.replace("*", "latest")
        parent = Path(_expand(model, actor)).parent
        found += [p for p in root.glob(str(parent / latest)) if p.is_file()]
    return sorted(set(found), key=lambda p: (str(p.parent), _epoch_key(p)))


def find(name: str, actor: str | None = None) -> Path | None:
    """The file entry ``name`` resolves to (highest epoch), or None when none is there.

    A per-actor entry without ``actor`` resolves only when exactly one actor has a file: with several,
    picking one would be a guess.
    """
    found = candidates(name, actor)
    if not found:
        return None
    if "{actor}" in entry(name).pattern and actor is None and len({p.parent for p in found}) > 1:
        return None
    return found[-1]


def expected_path(name: str, actor: str | None = None) -> Path:
    """Where entry ``name`` should be put (the pattern with the conventional epoch filled in)."""
    model = entry(name)
    pattern = model.pattern.replace("{actor}", actor or "<actor>")
    defaults = {"manipulator": "02", "renderer": "20", "meta_renderer": "15"}
    return models_dir() / pattern.replace("*", defaults.get(name, "NN"))


def require(name: str, actor: str | None = None, option: str | os.PathLike[str] | None = None) -> Path:
    """The file for entry ``name``: ``option`` when a backend option names one, else the models dir.

    Raises
    ------
    MissingModelError
        Naming the path looked at and how to get the file.
    """
    model = entry(name)
    if option is not None:
        path = Path(option).expanduser()
        if not path.is_file():
            raise MissingModelError(f"{model.what} not found at {path}: {model.source}", path=str(path))
        return path
    found = find(name, actor)
    if found is None and "{actor}" in model.pattern and not actor:
        actors = sorted({p.parent.name for p in candidates(name)})
        known = f" (found: {', '.join(actors)})" if actors else ""
        raise MissingModelError(
            f"the {name} is per actor: give backend option actor=NAME to select "
            f"{models_dir() / model.pattern}{known}, or checkpoint=FILE",
            path=str(models_dir() / model.pattern), field="actor")
    if found is None:
        where = expected_path(name, actor)
        raise MissingModelError(f"{model.what} not found at {where} (${ENV} = {models_dir()}): "
                                f"{model.source}", path=str(where))
    return found


@dataclass(frozen=True)
class Status:
    """What ``ned models`` reports for one entry: the files found (several actors for a renderer)."""

    model: ModelFile
    found: tuple[Path, ...]

    @property
    def ok(self) -> bool:
        return bool(self.found)


def status() -> list[Status]:
    """Every entry of ``MODELS`` with the files found for it (per actor for renderers)."""
    out = []
    for model in MODELS:
        found = candidates(model.name)
        if "{actor}" in model.pattern:
            best: dict[Path, Path] = {}
            for path in found:  # sorted best last, so the last one per actor wins
                best[path.parent] = path
            found = sorted(best.values())
        elif found:
            found = [found[-1]]
        out.append(Status(model, tuple(found)))
    return out


def missing() -> list[ModelFile]:
    """The required entries with no file in the models directory (``ned models`` flags these)."""
    return [s.model for s in status() if s.model.required and not s.ok]
