"""Loading, checking and saving network weights in NED's own file layouts.

* manipulator: ``{epoch:02d}_nets_finetuned.pth``, a dict ``{"generator", "mapping_network",
  "style_encoder", "discriminator"}`` of state dicts (the test script uses the first three);
* renderer: ``{epoch}_net_G.pth`` (and ``_net_D.pth`` / ``_net_Dm.pth``), one bare state dict each;
* DECA: ``deca_model.tar``, a dict whose ``E_flame`` entry is the coarse encoder.

Files are read with ``torch.load(weights_only=True)`` (no code runs from a checkpoint) and loaded
strictly: every tensor must be present with its exact shape, and nothing extra. ``check_checkpoint``
names each problem instead of failing on the first. Writes are atomic (temporary name, then rename).

Must not import zmq, msgpack or the engine.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar

import torch
from torch import nn

from ned_core.errors import InvalidOptionError, MissingModelError, OutputError
from ned_core.ned.manipulator_nets import Discriminator, Generator, MappingNetwork, StyleEncoder
from ned_core.ned.renderer_nets import Generator as RendererGenerator
from ned_core.ned.renderer_nets import MultiscaleDiscriminator

NetT = TypeVar("NetT", bound=nn.Module)
Kind = Literal["manipulator", "renderer", "renderer_discriminator", "deca"]
KINDS: tuple[str, ...] = ("manipulator", "renderer", "renderer_discriminator", "deca")

MANIPULATOR_HELP = ("download NED's trained manipulator (the manipulator_checkpoints folder linked from the "
                    "README of github.com/foivospar/NED, file 02_nets_finetuned.pth) or train one")
RENDERER_HELP = ("train a renderer for this actor (NED fine-tunes its meta-renderer, "
                 "checkpoints_meta-renderer/15_net_G.pth, for 20 epochs) or use one of NED's released "
                 "per-actor renderers (e.g. checkpoints_tarantino/20_net_G.pth, linked from NED's README)")
_WHOLE_FILE = ""
"""Entry name meaning "the file itself is the state dict" (renderer files)."""


def _shape(t: Any) -> str:
    return "x".join(str(s) for s in t.shape) if t.shape else "scalar"


def _strip_data_parallel(state: Mapping[str, Any]) -> Mapping[str, Any]:
    """Drop a ``module.`` prefix that every key carries (a model saved while wrapped in DataParallel)."""
    if state and all(isinstance(k, str) and k.startswith("module.") for k in state):
        return {k[len("module."):]: v for k, v in state.items()}
    return state


def state_dict_problems(net: nn.Module, state: Any, label: str = "") -> list[str]:
    """Every way ``state`` fails to load strictly into ``net``: missing, unexpected, mis-shaped tensors."""
    where = f"{label}: " if label else ""
    if not isinstance(state, Mapping):
        return [f"{where}expected a state dict, found {type(state).__name__}"]
    state = _strip_data_parallel(state)
    expected = net.state_dict()
    problems = []
    for key, ref in expected.items():
        if key not in state:
            problems.append(f"{where}missing tensor {key} ({_shape(ref)})")
        elif not isinstance(state[key], torch.Tensor):
            problems.append(f"{where}{key} is a {type(state[key]).__name__}, not a tensor")
        elif state[key].shape != ref.shape:
            problems.append(f"{where}{key} has shape {_shape(state[key])}, expected {_shape(ref)}")
    problems += [f"{where}unexpected tensor {key}" for key in state if key not in expected]
    return problems


def _read(path: Path, what: str, help_text: str) -> Any:
    if not path.is_file():
        raise MissingModelError(f"{what} not found at {path}: {help_text}", path=str(path))
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, OSError, EOFError, ValueError, KeyError,
            AttributeError, TypeError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise MissingModelError(f"{path} cannot be read as a {what} ({reason[:200]})",
                                path=str(path)) from exc


def _entries_problems(obj: Any, nets: Mapping[str, nn.Module],
                      optional: Mapping[str, nn.Module]) -> list[str]:
    if _WHOLE_FILE in nets:
        return state_dict_problems(nets[_WHOLE_FILE], obj)
    if not isinstance(obj, Mapping):
        return [f"expected a dict with {', '.join(nets)}, found {type(obj).__name__}"]
    problems = []
    for name, net in nets.items():
        if name not in obj:
            problems.append(f"missing entry {name!r}")
        else:
            problems += state_dict_problems(net, obj[name], name)
    for name, net in optional.items():
        if name in obj:
            problems += state_dict_problems(net, obj[name], name)
    return problems


def load_into(path: str | Path, nets: Mapping[str, nn.Module], *, help_text: str, what: str,
              optional: Mapping[str, nn.Module] | None = None) -> None:
    """Load the entries ``nets`` (name -> network; ``""`` = the whole file) of a checkpoint, strictly.

    ``optional`` entries are loaded when the file has them. Raises ``MissingModelError`` naming the
    file and its first problems.
    """
    path = Path(path)
    optional = optional or {}
    obj = _read(path, what, help_text)
    problems = _entries_problems(obj, nets, optional)
    if problems:
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise MissingModelError(f"{path} does not match {what}: {'; '.join(problems[:3])}{more}",
                                path=str(path))
    for name, net in {**nets, **{k: v for k, v in optional.items() if k in obj}}.items():
        state = obj if name == _WHOLE_FILE else obj[name]
        if any(t.is_meta for t in net.state_dict().values()):
            net.to_empty(device="cpu")  # every tensor is about to be overwritten
        net.load_state_dict(_strip_data_parallel(state), strict=True)


def empty_network(factory: Callable[[], NetT]) -> NetT:
    """Build a network on the meta device: shapes without memory or random initialisation.

    ``load_into`` materialises such a network on the CPU just before loading weights into it, so a
    checkpoint is checked and loaded without paying for an initialisation it overwrites.
    """
    with torch.device("meta"):
        return factory()


def _networks(kind: str) -> tuple[dict[str, nn.Module], dict[str, nn.Module], str, str]:
    """Empty full-size networks for ``kind``: (required entries, optional entries, what, help)."""
    if kind == "manipulator":
        required = {"generator": empty_network(Generator), "mapping_network": empty_network(MappingNetwork),
                    "style_encoder": empty_network(StyleEncoder)}
        optional = {"discriminator": empty_network(Discriminator)}
        return required, optional, "NED manipulator checkpoint", MANIPULATOR_HELP
    if kind == "renderer":
        return {_WHOLE_FILE: empty_network(RendererGenerator)}, {}, "NED renderer generator", RENDERER_HELP
    if kind == "renderer_discriminator":
        return ({_WHOLE_FILE: empty_network(MultiscaleDiscriminator)}, {}, "NED renderer discriminator",
                RENDERER_HELP)
    if kind == "deca":
        from ned_core.ned.deca_encoder import DECA_HELP, DecaCoarseEncoder

        return {"E_flame": empty_network(DecaCoarseEncoder)}, {}, "DECA model", DECA_HELP
    raise InvalidOptionError(f"unknown checkpoint kind {kind!r} (one of {', '.join(KINDS)})", field="kind")


def check_checkpoint(path: str | Path, kind: Kind) -> list[str]:
    """Everything that stops ``path`` from loading strictly as ``kind``; empty when it loads.

    Each problem is one line: a missing or unreadable file, a missing entry, or a missing, unexpected
    or mis-shaped tensor (by name, with the shapes).
    """
    nets, optional, what, help_text = _networks(kind)
    try:
        obj = _read(Path(path), what, help_text)
    except MissingModelError as exc:
        return [exc.message]
    return _entries_problems(obj, nets, optional)


def load_manipulator(path: str | Path) -> tuple[Generator, MappingNetwork, StyleEncoder]:
    """Generator, mapping network and style encoder from a ``*_nets(_finetuned).pth``, in eval mode."""
    g, f, e = empty_network(Generator), empty_network(MappingNetwork), empty_network(StyleEncoder)
    load_into(path, {"generator": g, "mapping_network": f, "style_encoder": e},
              help_text=MANIPULATOR_HELP, what="NED manipulator checkpoint")
    return g.eval(), f.eval(), e.eval()


def load_manipulator_discriminator(path: str | Path) -> Discriminator:
    """The manipulator's discriminator (to resume training), from the same file, in eval mode."""
    net = empty_network(Discriminator)
    load_into(path, {"discriminator": net}, help_text=MANIPULATOR_HELP, what="NED manipulator checkpoint")
    return net.eval()


def load_renderer(path: str | Path) -> RendererGenerator:
    """A renderer generator from ``*_net_G.pth``, in eval mode with per-image normalisation (NED's)."""
    net = empty_network(RendererGenerator)
    load_into(path, {_WHOLE_FILE: net}, help_text=RENDERER_HELP, what="NED renderer generator")
    return net.eval()


def load_renderer_discriminator(path: str | Path) -> MultiscaleDiscriminator:
    """A renderer discriminator from ``*_net_D.pth`` or ``*_net_Dm.pth`` (to fine-tune), in eval mode."""
    net = empty_network(MultiscaleDiscriminator)
    load_into(path, {_WHOLE_FILE: net}, help_text=RENDERER_HELP, what="NED renderer discriminator")
    return net.eval()


def _atomic_save(obj: Any, path: str | Path) -> Path:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"cannot write checkpoint {path}: {exc.strerror or exc}", path=str(path)) from exc
    return path


def _cpu_state(net: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu() for k, v in net.state_dict().items()}


def save_manipulator(path: str | Path, generator: Generator, mapping_network: MappingNetwork,
                     style_encoder: StyleEncoder, discriminator: Discriminator | None = None) -> Path:
    """Write a manipulator checkpoint in NED's layout (loadable by NED's ``manipulator/test.py``)."""
    obj = {"generator": _cpu_state(generator), "mapping_network": _cpu_state(mapping_network),
           "style_encoder": _cpu_state(style_encoder)}
    if discriminator is not None:
        obj["discriminator"] = _cpu_state(discriminator)
    return _atomic_save(obj, path)


def save_renderer(path: str | Path, net: RendererGenerator | MultiscaleDiscriminator) -> Path:
    """Write a renderer generator or discriminator as NED does: one bare state dict (``*_net_G.pth``)."""
    return _atomic_save(_cpu_state(net), path)
