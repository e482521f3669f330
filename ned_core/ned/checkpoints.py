"""Loading, checking and saving network weights in NED's own file layouts.

* manipulator: ``{epoch:02d}_nets_finetuned.pth``, a dict ``{"generator", "mapping_network",
  "style_encoder", "discriminator"}`` of state dicts (the test script uses the first three);
* renderer: ``{epoch}_net_G.pth`` (and ``_net_D.pth`` / ``_net_Dm.pth``), one bare state dict each;
* DECA: ``deca_model.tar``, a dict whose ``E_flame`` entry is the coarse encoder.

Files are read with ``torch.load(weights_only=True)`` (no code runs from a checkpoint) and loaded
strictly: every tensor must be present with its exact shape, and nothing extra. ``check_checkpoint``
names each problem against NED's full-size networks instead of failing on the first. The ``load_*``
functions build the networks at the sizes the file's tensors show (NED's full size for NED's files, a
small configuration for a test or a smaller trained model), then load strictly. A missing file raises
``MissingModelError``; an unreadable or mismatched one ``CorruptModelError``. Writes are atomic
(temporary name, then rename).

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

from ned_core.errors import CorruptModelError, InvalidOptionError, MissingModelError, OutputError
from ned_core.ned.deca_encoder import DECA_HELP, DecaCoarseEncoder
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


def read_checkpoint(path: Path, what: str, help_text: str) -> Any:
    if not path.is_file():
        raise MissingModelError(f"{what} not found at {path}: {help_text}", path=str(path))
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, OSError, EOFError, ValueError, KeyError,
            AttributeError, TypeError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CorruptModelError(f"{path} cannot be read as a {what} ({reason[:200]})",
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
              optional: Mapping[str, nn.Module] | None = None, contents: Any = None) -> None:
    """Load the entries ``nets`` (name -> network; ``""`` = the whole file) of a checkpoint, strictly.

    ``optional`` entries are loaded when the file has them; ``contents`` is the file's already-read
    contents (``read_checkpoint``), to avoid reading a large file twice. Raises ``MissingModelError``
    when the file is missing and ``CorruptModelError`` naming the file and its first problems when it
    does not load.
    """
    path = Path(path)
    optional = optional or {}
    obj = read_checkpoint(path, what, help_text) if contents is None else contents
    problems = _entries_problems(obj, nets, optional)
    if problems:
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise CorruptModelError(f"{path} does not match {what}: {'; '.join(problems[:3])}{more}",
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
        return {"E_flame": empty_network(DecaCoarseEncoder)}, {}, "DECA model", DECA_HELP
    raise InvalidOptionError(f"unknown checkpoint kind {kind!r} (one of {', '.join(KINDS)})", field="kind")


def check_checkpoint(path: str | Path, kind: Kind) -> list[str]:
    """Everything that stops ``path`` from loading strictly as ``kind``; empty when it loads.

    Each problem is one line: a missing or unreadable file, a missing entry, or a missing, unexpected
    or mis-shaped tensor (by name, with the shapes).
    """
    nets, optional, what, help_text = _networks(kind)
    try:
        obj = read_checkpoint(Path(path), what, help_text)
    except (MissingModelError, CorruptModelError) as exc:
        return [exc.message]
    return _entries_problems(obj, nets, optional)


# ---------------------------------------------------------------------------------------------------
# Network sizes from a checkpoint's tensors (a missing tensor keeps NED's size, so strict loading
# still names it)


def _dim(state: Any, key: str, axis: int, default: int) -> int:
    if isinstance(state, Mapping):
        value = _strip_data_parallel(state).get(key)
        if isinstance(value, torch.Tensor) and value.ndim > axis:
            return int(value.shape[axis])
    return default


def _count(state: Any, pattern: str, default: int) -> int:
    """How many consecutive ``pattern.format(i)`` keys (i = 0, 1, ...) the state dict has."""
    if not isinstance(state, Mapping):
        return default
    keys = _strip_data_parallel(state)
    n = 0
    while any(k.startswith(pattern.format(n)) for k in keys):
        n += 1
    return n or default


def _indices(state: Any, prefix: str, marker: str) -> list[int]:
    """Sorted module indices ``i`` of keys ``prefix.i.marker...`` (e.g. the ResnetBlocks of a branch)."""
    if not isinstance(state, Mapping):
        return []
    found = set()
    for key in _strip_data_parallel(state):
        if key.startswith(prefix + ".") and f".{marker}." in key:
            head = key[len(prefix) + 1:].split(".")[0]
            if head.isdigit():
                found.add(int(head))
    return sorted(found)


def manipulator_config(obj: Any) -> dict[str, dict[str, Any]]:
    """Constructor arguments of the four manipulator networks for a ``*_nets.pth`` dict."""
    obj = obj if isinstance(obj, Mapping) else {}
    g, f, e, d = (obj.get(k) for k in ("generator", "mapping_network", "style_encoder", "discriminator"))
    frame = _dim(g, "seq2.4.weight", 0, 51)

    def encoder(state: Any, out_key: str, default_out: int) -> dict[str, Any]:
        return {"input_dim": _dim(state, "seq1.0.weight", 1, frame), out_key: _dim(state, "seq2.4.weight", 0,
                                                                                   default_out),
                "hidden_dims": (_dim(state, "seq1.0.weight", 0, 512), _dim(state, "seq1.2.weight", 0, 256)),
                "lstm_dim": _dim(state, "LSTM.weight_hh_l0", 1, 128),
                "head_dims": (_dim(state, "seq2.0.weight", 0, 128), _dim(state, "seq2.2.weight", 0, 64))}

    style = _dim(f, "unshared.0.2.weight", 0, 16)
    return {
        "generator": {"input_dim": frame, "style_dim": _dim(g, "seq1.0.weight", 1, frame + style) - frame,
                      "hidden_dim": _dim(g, "seq1.0.weight", 0, 512),
                      "lstm_dim": _dim(g, "LSTM.weight_hh_l0", 1, 512),
                      "lstm_layers": _count(g, "LSTM.weight_ih_l{}", 2)},
        "mapping_network": {"latent_dim": _dim(f, "shared.0.weight", 1, 4),
                            "hidden_dim": _dim(f, "shared.0.weight", 0, 64), "style_dim": style,
                            "num_domains": _count(f, "unshared.{}.", 7)},
        "style_encoder": encoder(e, "style_dim", style),
        "discriminator": encoder(d, "num_domains", 7),
    }


def renderer_config(state: Any) -> dict[str, int]:
    """Constructor arguments of ``renderer_nets.Generator`` for a ``*_net_G.pth`` state dict."""
    ngf = _dim(state, "model_down_seg.1.weight", 0, 64)
    output_nc = _dim(state, "model_final_img.1.weight", 0, 3)
    n_frames = _dim(state, "model_down_img.1.weight", 1, 2 * output_nc) // max(output_nc, 1) + 1
    cond_nc = _dim(state, "model_down_seg.1.weight", 1, 9 * n_frames) // n_frames
    keys = list(_strip_data_parallel(state)) if isinstance(state, Mapping) else []
    n_down = sum(1 for k in keys if k.startswith("model_up_img.") and k.endswith(".weight")) or 3
    branch = len(_indices(state, "model_down_seg", "conv_block")) or 5
    res = len(_indices(state, "model_res_img", "conv_block")) or 4
    # The generator puts n - n // 2 blocks in each branch and n // 2 after them.
    n_blocks = branch + res if branch - res in (0, 1) else 9
    return {"cond_nc": cond_nc, "n_frames": n_frames, "output_nc": output_nc, "ngf": ngf,
            "n_downsample": n_down, "n_blocks": n_blocks}


def discriminator_config(state: Any) -> dict[str, int]:
    """Constructor arguments of ``renderer_nets.MultiscaleDiscriminator`` for a ``*_net_D.pth``."""
    num_d = _count(state, "scale{}_layer0.", 2)
    n_layers = _count(state, f"scale{num_d - 1}_layer{{}}.", 5) - 2
    width = _dim(state, f"scale{num_d - 1}_layer0.0.weight", 0, 64)
    in_nc = _dim(state, "scale0_layer0.0.weight", 1, 12)
    return {"cond_nc": in_nc - 3, "image_nc": 3, "ndf": width, "n_layers": max(n_layers, 1), "num_D": num_d}


def deca_config(obj: Any) -> dict[str, Any]:
    """Constructor arguments of ``DecaCoarseEncoder`` for a ``deca_model.tar`` dict."""
    state = obj.get("E_flame") if isinstance(obj, Mapping) else None
    blocks = tuple(_count(state, f"encoder.layer{i}.{{}}.", n) for i, n in zip((1, 2, 3, 4), (3, 4, 6, 3),
                                                                              strict=True))
    return {"code_size": _dim(state, "layers.2.weight", 0, 236), "layers": blocks}


def load_manipulator(path: str | Path) -> tuple[Generator, MappingNetwork, StyleEncoder]:
    """Generator, mapping network and style encoder from a ``*_nets(_finetuned).pth``, in eval mode."""
    contents = read_checkpoint(Path(path), "NED manipulator checkpoint", MANIPULATOR_HELP)
    cfg = manipulator_config(contents)
    g = empty_network(lambda: Generator(**cfg["generator"]))
    f = empty_network(lambda: MappingNetwork(**cfg["mapping_network"]))
    e = empty_network(lambda: StyleEncoder(**cfg["style_encoder"]))
    load_into(path, {"generator": g, "mapping_network": f, "style_encoder": e},
              help_text=MANIPULATOR_HELP, what="NED manipulator checkpoint", contents=contents)
    return g.eval(), f.eval(), e.eval()


def load_manipulator_discriminator(path: str | Path) -> Discriminator:
    """The manipulator's discriminator (to resume training), from the same file, in eval mode."""
    contents = read_checkpoint(Path(path), "NED manipulator checkpoint", MANIPULATOR_HELP)
    net = empty_network(lambda: Discriminator(**manipulator_config(contents)["discriminator"]))
    load_into(path, {"discriminator": net}, help_text=MANIPULATOR_HELP, what="NED manipulator checkpoint",
              contents=contents)
    return net.eval()


def load_renderer(path: str | Path) -> RendererGenerator:
    """A renderer generator from ``*_net_G.pth``, in eval mode with per-image normalisation (NED's)."""
    contents = read_checkpoint(Path(path), "NED renderer generator", RENDERER_HELP)
    net = empty_network(lambda: RendererGenerator(**renderer_config(contents)))
    load_into(path, {_WHOLE_FILE: net}, help_text=RENDERER_HELP, what="NED renderer generator",
              contents=contents)
    return net.eval()


def load_renderer_discriminator(path: str | Path) -> MultiscaleDiscriminator:
    """A renderer discriminator from ``*_net_D.pth`` or ``*_net_Dm.pth`` (to fine-tune), in eval mode."""
    contents = read_checkpoint(Path(path), "NED renderer discriminator", RENDERER_HELP)
    net = empty_network(lambda: MultiscaleDiscriminator(**discriminator_config(contents)))
    load_into(path, {_WHOLE_FILE: net}, help_text=RENDERER_HELP, what="NED renderer discriminator",
              contents=contents)
    return net.eval()


def load_deca_encoder(path: str | Path) -> DecaCoarseEncoder:
    """The coarse encoder from DECA's ``deca_model.tar`` (its ``E_flame`` entry), strictly, in eval mode.

    The network is built at the size the file's tensors show (DECA's ResNet-50 for DECA's file).
    Raises ``MissingModelError`` when the file is missing, ``CorruptModelError`` when it is unreadable
    or does not match.
    """
    contents = read_checkpoint(Path(path), "DECA model", DECA_HELP)
    net = empty_network(lambda: DecaCoarseEncoder(**deca_config(contents)))
    load_into(path, {"E_flame": net}, help_text=DECA_HELP, what="DECA model", contents=contents)
    return net.eval()


def atomic_save(obj: Any, path: str | Path) -> Path:
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
    return atomic_save(obj, path)


def save_renderer(path: str | Path, net: RendererGenerator | MultiscaleDiscriminator) -> Path:
    """Write a renderer generator or discriminator as NED does: one bare state dict (``*_net_G.pth``)."""
    return atomic_save(_cpu_state(net), path)
