"""The ``ned`` command line: ``ned edit`` (the shot pipeline), ``ned info``, ``ned --version``.

Every failure prints one line naming the file, frame or option at fault and exits non-zero:
1 for a pipeline error (its stable code first), 2 for a usage error, 130 when interrupted.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Sequence

from ned_core import EMOTIONS
from ned_core import __version__ as core_version
from ned_core.errors import InvalidOptionError, NedError
from ned_core.io import is_sequence_pattern, parse_frame_range
from ned_core.keyframes import INTERPOLATIONS, EmotionCurve
from ned_core.pipeline import OUTPUT_LAYERS, PRESETS, OutputSpec, Pipeline, Shot
from ned_core.track.base import FaceHint
from ned_engine import __version__ as engine_version
from ned_engine import models_cli, train_cli
from ned_engine.jobs import backends_from_args, layers_option, numbers_option
from ned_engine.progress import ProgressBar, print_summary


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ned", description="NED: change the emotion an actor's face shows, keeping the speech.")
    parser.add_argument("--version", action="version",
                        version=f"ned {engine_version} (ned_core {core_version})")
    commands = parser.add_subparsers(dest="command", required=True)

    edit = commands.add_parser("edit", help="edit a shot's emotion and write EXR frames")
    edit.add_argument("input", help="a movie, an image sequence pattern (####, %%04d, @) or one still")
    edit.add_argument("--output", "-o", required=True, help="EXR output pattern, e.g. out/shot.####.exr")
    edit.add_argument("--frames", help="frame range FIRST-LAST (default: the whole plate)")
    edit.add_argument("--start", type=int, default=1001, help="number of a movie's first frame (1001)")
    edit.add_argument("--emotion", help=f"constant target NAME[:INTENSITY], NAME one of {', '.join(EMOTIONS)}")
    edit.add_argument("--key", action="append", default=[], metavar="FRAME:EMOTION=W[,EMOTION=W][,mouth=P]",
                      help="an emotion keyframe (repeat for several); mouth=P sets the mouth preservation "
                           "at that frame (e.g. 1030:happy=1,mouth=0 frees the mouth there)")
    edit.add_argument("--interpolation", choices=INTERPOLATIONS, default="smooth",
                      help="between keyframes (default smooth)")
    edit.add_argument("--mouth-preservation", type=float, default=None,
                      help="1 keeps the original mouth opening exactly (default for footage), 0 lets the rig "
                           "move it (default for a still, which has no speech to keep); keys without mouth=P "
                           "take this value")
    edit.add_argument("--mask", help="user matte sequence pattern (alpha, else first channel)")
    edit.add_argument("--face", help="follow the face nearest this point: X,Y in pixels")
    edit.add_argument("--face-box", help="follow the face in this box: X0,Y0,X1,Y1 in pixels")
    edit.add_argument("--backend", default="default", help=f"backend preset ({', '.join(PRESETS)})")
    edit.add_argument("--option", action="append", default=[], metavar="STAGE.KEY=VALUE",
                      help="a backend option, e.g. render.actor=alice or track.smoothing=0.5 (repeatable)")
    edit.add_argument("--colorspace", help="the plate's colourspace (default: inferred from the file type)")
    edit.add_argument("--output-colorspace", metavar="NAME",
                      help="the EXRs' colourspace (default: the plate's own when scene-linear, else the OCIO "
                           "config's scene_linear role; name the plate's colourspace to keep its encoding)")
    edit.add_argument("--compression", default="zip", help="EXR compression (default zip)")
    edit.add_argument("--layers", metavar="LIST",
                      help="layers written beside RGBA, comma-separated: matte, stmap (default both), or none; "
                           "leaving out the STMap saves 15–20% of a 1080p frame's CPU and nearly a third of "
                           "its bytes")
    depth = edit.add_mutually_exclusive_group()
    depth.add_argument("--float", action="store_true",
                       help="write RGBA as 32-bit float (default: half, or float where half would not give "
                            "the plate's values back: float / 16-bit plates, conversions that mix channels)")
    depth.add_argument("--half", action="store_true", help="write RGBA as half float whatever the plate")
    edit.add_argument("--preview", help="also write a before|after movie (with the source's audio)")
    edit.add_argument("--cache-dir", help="analysis cache directory (default $NED_CACHE_DIR or ~/.cache/ned)")
    edit.add_argument("--no-cache", action="store_true", help="always re-analyse the shot")
    edit.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    edit.add_argument("--engine", metavar="ADDR", help="run on the engine at ADDR (e.g. tcp://127.0.0.1:7741)")
    edit.add_argument("--inline", action="store_true",
                      help="with --engine: send the plate's frames and get the EXRs back over the wire")
    edit.add_argument("--curve-server-key", metavar="FILE", help="with --engine: the engine's CurveZMQ public key")
    edit.add_argument("--curve-key", metavar="FILE", help="with --engine: this client's .key_secret file")

    info = commands.add_parser("info", help="describe a plate: frames, size, colourspace, faces")
    info.add_argument("input")
    info.add_argument("--frames")
    info.add_argument("--start", type=int, default=1001)
    info.add_argument("--colorspace")
    info.add_argument("--output-colorspace", metavar="NAME")
    models_cli.add_parser(commands)
    train_cli.add_parser(commands)
    return parser


def shot_from_args(args: argparse.Namespace) -> Shot:
    face = None
    point, box = getattr(args, "face", None), getattr(args, "face_box", None)
    if point and box:
        raise InvalidOptionError("give --face or --face-box, not both", field="face")
    if point:
        face = FaceHint(point=tuple(numbers_option(point, 2, "--face")))
    elif box:
        face = FaceHint(box=tuple(numbers_option(box, 4, "--face-box")))
    return Shot(plate=args.input, frame_range=parse_frame_range(args.frames) if args.frames else None,
                colorspace=args.colorspace, mask=getattr(args, "mask", None), face=face, start=args.start)


def curve_from_args(args: argparse.Namespace) -> EmotionCurve:
    if args.emotion and args.key:
        raise InvalidOptionError("give --emotion or --key, not both", field="emotion")
    if args.emotion:
        return EmotionCurve.parse_emotion(args.emotion)
    if args.key:
        return EmotionCurve.parse_keys(args.key, args.interpolation)
    raise InvalidOptionError("say what to do: --emotion NAME[:INTENSITY] or --key FRAME:EMOTION=W",
                             field="emotion")


PREVIEW_SUFFIXES = (".mp4", ".mov", ".m4v")


def check_edit_args(args: argparse.Namespace) -> None:
    """Check what ``ned edit`` will write before any work.

    The RGBA depth is settled where the frames are written (``OutputSpec.half`` None without
    ``--float``/``--half``): half unless the plate's values, or their conversion to the output
    colourspace, need float to come back exactly.
    """
    from ned_core.io.colour import output_colorspace
    from ned_core.pipeline import open_plate

    if args.output_colorspace is not None:
        output_colorspace("", args.output_colorspace)  # an unknown name fails before the plate is read
    if args.layers is not None:
        layers_option(args.layers)
    if not args.output.lower().endswith(".exr"):
        raise InvalidOptionError(f"--output {args.output!r} must be an .exr pattern", field="output")
    if args.preview and not args.preview.lower().endswith(PREVIEW_SUFFIXES):
        raise InvalidOptionError(f"--preview {args.preview!r} must end in {', '.join(PREVIEW_SUFFIXES)}",
                                 field="preview")
    with open_plate(shot_from_args(args)) as plate:
        if len(plate.frames) > 1 and not is_sequence_pattern(args.output):
            raise InvalidOptionError(
                f"--output {args.output!r} has no frame number token (####, %04d or @) for a "
                f"{len(plate.frames)}-frame shot", field="output")


def run_edit(args: argparse.Namespace) -> int:
    from ned_core.cache import AnalysisCache

    if not args.engine and (args.inline or args.curve_server_key or args.curve_key):
        raise InvalidOptionError("--inline and --curve-* need --engine ADDR", field="engine")
    check_edit_args(args)
    if args.engine:
        from ned_engine.remote import run_remote

        return run_remote(args, args.engine, None if args.quiet else ProgressBar())
    shot = shot_from_args(args)
    curve = curve_from_args(args)
    output = OutputSpec(args.output, compression=args.compression,
                        half=False if args.float else True if args.half else None,
                        colorspace=args.output_colorspace,
                        layers=OUTPUT_LAYERS if args.layers is None else layers_option(args.layers))
    pipeline = Pipeline(backends_from_args(args),
                        cache=AnalysisCache(args.cache_dir) if args.cache_dir else None,
                        use_cache=not args.no_cache)
    result = pipeline.run(shot, curve, output, mouth_preservation=args.mouth_preservation,
                          progress=None if args.quiet else ProgressBar(), preview=args.preview)
    print_summary(sorted(result.written), args.output, result.lost_frames, result.analysis_cached)
    if args.preview:
        print(f"preview: {args.preview}")
    return 0


def run_info(args: argparse.Namespace) -> int:
    from ned_core import track
    from ned_core.io.colour import output_colorspace, output_needs_float
    from ned_core.pipeline import open_plate

    shot = shot_from_args(args)
    with open_plate(shot) as plate:
        out_space = output_colorspace(plate.colorspace, args.output_colorspace)
        first = plate.read(plate.first)
        depth = "float" if output_needs_float(first.info.source_format, first.info.source_bits, plate.colorspace,
                                              out_space) else "half"
        how = "the plate's own" if out_space == plate.colorspace else f"converted from {plate.colorspace}"
        print(f"plate:      {plate.path} ({plate.kind})")
        print(f"frames:     {plate.first}-{plate.last} ({len(plate.frames)} frames)")
        print(f"size:       {plate.width}x{plate.height}")
        print(f"colorspace: {plate.colorspace}")
        print(f"output:     {out_space} ({how}; RGBA {depth})")
        if plate.fps:
            print(f"fps:        {plate.fps:g}" + ("  (has audio)" if plate.has_audio else ""))
        tracker = track.get()
        samples = sorted({plate.first, plate.frames[len(plate.frames) // 2], plate.last})
        for frame in samples:
            boxes = tracker.detect(plate.read(frame).display_rgb8())
            described = ", ".join(f"({b[0]:.0f},{b[1]:.0f})-({b[2]:.0f},{b[3]:.0f})" for b in boxes)
            print(f"faces at {frame}: {len(boxes)}" + (f"  {described}" if boxes else ""))
    return 0


def _terminate(signum: int, frame: object) -> None:
    # A farm's kill is SIGTERM: unwind like Ctrl-C so temporary files are removed on the way out.
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate)
    try:
        handler = getattr(args, "handler", None) or {"edit": run_edit, "info": run_info}[args.command]
        return handler(args)
    except NedError as err:
        print(f"ned: error: {err.one_line()}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("ned: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `ned info ... | head`: the reader left, nothing more to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
