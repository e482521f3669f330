"""The ``ned-engine`` command line: ``serve`` the engine, run farm chunks, and check on a running engine.

    ned-engine serve [--bind tcp://127.0.0.1:7741] [--workers N] [--journal PATH] [--allow-root DIR ...]
                     [--curve-secret FILE --curve-allow DIR|FILE ...] [--cache-dir DIR] [--monitor HOST:PORT]
    ned-engine analyze JOB.json [--cache-dir DIR]          analyse a shot once, into the shared cache
    ned-engine render JOB.json --frames 1001-1020          render one chunk (no server)
    ned-engine farm JOB.json --target openjd|opencue|deadline [--chunk N] [--out DIR]   a native farm job
    ned-engine ping ADDR | status ADDR [--prometheus] | health ADDR [--ready]
    ned-engine shutdown ADDR [--drain] [--token-file FILE]
    ned-engine keygen DIR NAME                             a CurveZMQ keypair

Every failure prints one line (``ned-engine: error: CODE: message``) and exits 1; usage errors exit 2.
This module parses arguments and wires the engine's parts together; the work is elsewhere.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any

from ned_protocol.errors import NedError

from ned_core.errors import InvalidOptionError
from ned_core.errors import NedError as CoreError
from ned_core.io import parse_frame_range
from ned_engine import __version__
from ned_engine.workers import Limits, StageFactory

DEFAULT_BIND = "tcp://127.0.0.1:7741"


def default_journal() -> str:
    """``$NED_ENGINE_HOME/journal.sqlite``, else ``~/.local/share/ned/engine/journal.sqlite``."""
    home = os.environ.get("NED_ENGINE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share", "ned",
                                                             "engine")
    return os.path.join(home, "journal.sqlite")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ned-engine", description="The NED engine: a headless server for "
                                     "host plugins, and a farm runner.")
    parser.add_argument("--version", action="version", version=f"ned-engine {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the engine server")
    serve.add_argument("--bind", default=DEFAULT_BIND, help=f"ZeroMQ endpoint (default {DEFAULT_BIND}; "
                       "tcp://127.0.0.1:* picks a free port)")
    serve.add_argument("--workers", type=int, default=None,
                       help="worker processes, each with its own warm backends (1; with --ray: one actor per "
                       "GPU of the cluster, else per CPU slot)")
    serve.add_argument("--worker-threads", type=int, default=None, metavar="N",
                       help="numeric-library threads per worker process (default: cores / workers)")
    serve.add_argument("--device", action="append", default=[], metavar="DEVICE",
                       help="a worker process's device, e.g. cuda:0 (repeat: one per worker, round robin)")
    serve.add_argument("--chunk", type=int, default=None, metavar="N",
                       help="frames per chunk of a job (default: its frames / workers, at most 100)")
    serve.add_argument("--pin-cpus", action="store_true",
                       help="pin each worker process to its own --worker-threads cores")
    serve.add_argument("--ray", metavar="auto|ADDRESS", default=None,
                       help="run the workers as actors on a Ray cluster (extra ned-engine[ray]); auto: the cluster "
                       "RAY_ADDRESS names, else one running on this machine, else a new local one")
    serve.add_argument("--journal", default=None, help="SQLite journal (default $NED_ENGINE_HOME/journal.sqlite "
                       "or ~/.local/share/ned/engine/journal.sqlite; ':memory:' keeps nothing)")
    serve.add_argument("--allow-root", action="append", default=[], metavar="DIR",
                       help="a folder job paths may lie in (repeat; none: inline jobs only)")
    serve.add_argument("--cache-dir", help="analysis cache (default $NED_CACHE_DIR or ~/.cache/ned/analysis)")
    serve.add_argument("--curve-secret", metavar="FILE", help="the engine's CurveZMQ .key_secret file")
    serve.add_argument("--curve-allow", action="append", default=[], metavar="DIR|FILE",
                       help="client public keys allowed in (a .key file or a folder of them; repeat)")
    serve.add_argument("--require-curve", action="store_true", help="use CurveZMQ even on a loopback bind")
    serve.add_argument("--admin-keys", action="append", default=[], metavar="DIR|FILE",
                       help="client public keys allowed to shut the engine down")
    serve.add_argument("--admin-token", metavar="FILE", help="where to write the shutdown token "
                       "(default JOURNAL.token, owner-only, new at every start)")
    serve.add_argument("--monitor", help="HTTP monitoring endpoint HOST:PORT, or 'off' (default "
                       "127.0.0.1:<bind port + 1>)")
    serve.add_argument("--max-frames", type=int, default=Limits.max_frames, help="frames per job")
    serve.add_argument("--max-pixels", type=int, default=Limits.max_pixels, help="pixels per frame")
    serve.add_argument("--max-queued", type=int, default=Limits.max_queued, help="queued and running jobs")
    serve.add_argument("--max-queued-per-client", type=int, default=Limits.max_queued_per_client)
    serve.add_argument("--max-payload-mb", type=float, default=Limits.max_payload_bytes / 2**20,
                       help="largest inline frame (MiB); a bigger ZeroMQ frame drops its connection")
    serve.add_argument("--hang-timeout", type=float, default=300.0,
                       help="seconds a worker may go without progress before health reports it hung")
    serve.add_argument("--retain-days", type=float, default=7.0, help="days finished jobs stay resumable")
    serve.add_argument("--stages", metavar="MODULE:FUNCTION",
                       help="embedding/tests: a function(backends) returning ready backend objects by stage name")
    serve.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])

    for name, text in (("analyze", "analyse a job's shot once into the (shared) analysis cache"),
                       ("render", "render a job's frames on this node, without a server")):
        farm = commands.add_parser(name, help=text)
        farm.add_argument("job", help="a JobSpec as JSON (see docs/engine.md)")
        farm.add_argument("--cache-dir", help="the analysis cache every node reads")
        farm.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
        if name == "render":
            farm.add_argument("--frames", help="the chunk FIRST-LAST (default: the whole shot)")

    farm_job = commands.add_parser("farm", help="write a native farm job (analysis, then render chunks)")
    farm_job.add_argument("job", help="a JobSpec as JSON, at a path every farm node can read")
    farm_job.add_argument("--target", required=True, choices=["openjd", "opencue", "deadline"])
    farm_job.add_argument("--chunk", type=int, default=10, help="frames per render task (10)")
    farm_job.add_argument("--out", help="folder for the job's files (default JOB.TARGET beside JOB.json)")
    farm_job.add_argument("--cache-dir", help="the shared analysis cache (default .ned_cache beside the output)")
    farm_job.add_argument("--engine-command", default="ned-engine", help="ned-engine as the nodes run it")

    for name, text in (("ping", "exit 0 when an engine answers at ADDR"),
                       ("status", "an engine's version, workers, jobs and counters"),
                       ("health", "exit 0 when the engine's loops are alive (and, with --ready, ready)"),
                       ("shutdown", "stop an engine (needs its token or an administrator key)")):
        check = commands.add_parser(name, help=text)
        check.add_argument("address", help="the engine, e.g. tcp://127.0.0.1:7741")
        check.add_argument("--timeout", type=float, default=5.0, help="seconds to wait (5)")
        check.add_argument("--curve-server-key", metavar="FILE", help="the engine's public key (CurveZMQ)")
        check.add_argument("--curve-key", metavar="FILE", help="this client's .key_secret file (CurveZMQ)")
        if name in ("status", "health"):
            check.add_argument("--monitor", metavar="URL", help="the engine's monitor (default "
                               "http://HOST:<port + 1>)")
        if name == "status":
            check.add_argument("--prometheus", action="store_true", help="print counters in Prometheus format")
            check.add_argument("--json", action="store_true", help="print everything as JSON")
        if name == "health":
            check.add_argument("--ready", action="store_true", help="also require readiness")
        if name == "shutdown":
            check.add_argument("--token-file", help="the engine's token file (default: next to the "
                               "default journal)")
            check.add_argument("--drain", action="store_true", help="let running jobs finish first")

    keygen = commands.add_parser("keygen", help="make a CurveZMQ keypair (NAME.key, NAME.key_secret)")
    keygen.add_argument("directory")
    keygen.add_argument("name")
    return parser


# -- serve ---------------------------------------------------------------------------------------------
def run_serve(args: argparse.Namespace) -> int:
    from ned_engine.monitor import Monitor
    from ned_engine.security import CurveServer, is_loopback, read_keys
    from ned_engine.server import Engine, EngineConfig

    logging.basicConfig(level=args.log_level, stream=sys.stderr,
                        format="%(asctime)s ned-engine %(levelname)s %(message)s")
    bind = args.bind
    wants_curve = args.require_curve or not is_loopback(bind)
    curve = None
    if wants_curve:
        if not args.curve_secret or not args.curve_allow:
            raise InvalidOptionError(
                f"binding {bind} " + ("with --require-curve" if is_loopback(bind) else "(not loopback)")
                + " needs CurveZMQ: --curve-secret FILE and --curve-allow DIR|FILE (see ned-engine keygen)",
                field="bind")
        admin = read_keys(args.admin_keys)
        curve = CurveServer(args.curve_secret, read_keys(args.curve_allow) | admin)
    elif args.curve_secret or args.curve_allow:
        raise InvalidOptionError("--curve-secret/--curve-allow on a loopback bind: add --require-curve",
                                 field="curve_secret")
    else:
        admin = set()
    if args.workers is not None and args.workers < 1:
        raise InvalidOptionError("--workers must be at least 1", field="workers")
    workers = args.workers if args.workers is not None else (0 if args.ray else 1)
    for name in ("worker_threads", "chunk"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise InvalidOptionError(f"--{name.replace('_', '-')} must be at least 1", field=name)
    limits = Limits(max_frames=args.max_frames, max_pixels=args.max_pixels, max_queued=args.max_queued,
                    max_queued_per_client=args.max_queued_per_client,
                    max_payload_bytes=int(args.max_payload_mb * 2**20))
    config = EngineConfig(bind=bind, journal=args.journal or default_journal(), token_file=args.admin_token,
                          workers=workers, allow_roots=args.allow_root, cache_dir=args.cache_dir,
                          curve=curve, admin_keys=admin, limits=limits, stage_factory=_factory(args.stages),
                          hang_timeout=args.hang_timeout, retain_days=args.retain_days,
                          worker_threads=args.worker_threads, devices=args.device, chunk=args.chunk, ray=args.ray,
                          pin_cpus=args.pin_cpus)
    engine = Engine(config)
    engine.start()
    monitor = None
    where = _monitor_bind(args.monitor, engine.address)
    if where is not None:
        try:
            monitor = Monitor(where, engine.health, engine.metrics)
        except OSError as error:
            engine.request_stop()
            engine.serve_forever()
            raise InvalidOptionError(f"cannot serve the monitor on {where}: {error.strerror or error}",
                                     field="monitor") from None
        monitor.start()

    def stop(signum: int, frame: Any) -> None:
        engine.request_stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"ned-engine {__version__} serving {engine.address} (session {engine.session}, {len(engine.workers)} "
          f"workers, auth {'curve' if curve else 'none'}, journal {config.journal}, monitor "
          f"{monitor.url if monitor else 'off'}, token {engine.token_file})", flush=True)
    try:
        engine.serve_forever()
    finally:
        if monitor is not None:
            monitor.stop()
    return 0


def _factory(text: str | None) -> StageFactory | None:
    if not text:
        return None
    module_name, sep, name = text.partition(":")
    try:
        function = getattr(importlib.import_module(module_name), name) if sep else None
    except (ImportError, AttributeError) as error:
        raise InvalidOptionError(f"--stages {text}: {error}", field="stages") from None
    if not callable(function):
        raise InvalidOptionError(f"--stages {text} is not MODULE:FUNCTION", field="stages")
    return function


def _monitor_bind(option: str | None, address: str) -> str | None:
    if option == "off":
        return None
    if option:
        return option
    if not address.startswith("tcp://"):
        return None
    port = int(address.rpartition(":")[2])
    return f"127.0.0.1:{port + 1}"


def monitor_url(address: str, option: str | None) -> str:
    """The monitor of the engine at ``address``: ``option`` or ``http://HOST:<port + 1>``."""
    if option:
        return option.rstrip("/") if "://" in option else "http://" + option
    from ned_engine.security import split_tcp

    host, port = split_tcp(address)
    if host in ("*", "0.0.0.0", "::"):
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{int(port) + 1}"


# -- farm ----------------------------------------------------------------------------------------------
def run_analyze(args: argparse.Namespace) -> int:
    from ned_engine import farm
    from ned_engine.progress import ProgressBar

    spec = farm.load_job(args.job)
    path, cached = farm.analyze(spec, args.cache_dir, progress=None if args.quiet else ProgressBar())
    print(f"analysis {'already in' if cached else 'written to'} {path}")
    return 0


def run_render(args: argparse.Namespace) -> int:
    from ned_engine import farm
    from ned_engine.progress import ProgressBar, print_summary

    spec = farm.load_job(args.job)
    chunk = parse_frame_range(args.frames) if args.frames else None
    result = farm.render(spec, chunk, args.cache_dir, progress=None if args.quiet else ProgressBar())
    print_summary(sorted(result.written), spec["output"]["pattern"], result.lost_frames, result.analysis_cached)
    return 0


def run_farm(args: argparse.Namespace) -> int:
    from ned_engine import farm_targets

    job = farm_targets.farm_job(args.job, chunk=args.chunk, cache_dir=args.cache_dir, engine=args.engine_command)
    out = args.out or os.path.splitext(os.path.abspath(args.job))[0] + "." + args.target
    for path in farm_targets.write(job, args.target, out):
        print(path)
    return 0


# -- checks on a running engine ---------------------------------------------------------------------------
def _client(args: argparse.Namespace) -> Any:
    from ned_protocol import Client

    from ned_engine.remote import _curve

    return Client(args.address, timeout=args.timeout, heartbeat=max(args.timeout, 1.0),
                  client_name=f"ned-engine/{__version__}", **_curve(args.curve_server_key, args.curve_key))


def run_ping(args: argparse.Namespace) -> int:
    with _client(args) as client:
        seconds = client.ping()
        welcome = client.welcome or {}
    print(f"pong from {args.address} in {seconds * 1000:.1f} ms (ned-engine {welcome.get('engine_version', '?')}, "
          f"session {welcome.get('session', '?')})")
    return 0


def _monitor_status(args: argparse.Namespace) -> dict[str, Any]:
    from ned_engine.monitor import fetch

    url = monitor_url(args.address, args.monitor)
    code, text = fetch(url + "/status", timeout=args.timeout)
    if code != 200:
        raise InvalidOptionError(f"no monitor at {url} ({text.strip() or code}): start the engine with its "
                                 f"monitor on, or pass --monitor URL", field="monitor")
    return json.loads(text)


def run_health(args: argparse.Namespace) -> int:
    with _client(args) as client:
        seconds = client.ping()
    status = _monitor_status(args)
    bad = status["problems"] or ([] if status["ready"] or not args.ready else ["not ready (loading or stopping)"])
    if bad:
        print(f"unhealthy: {'; '.join(bad)}")
        return 1
    workers = status["workers"]
    print(f"ok: {args.address} answers in {seconds * 1000:.1f} ms; {len(workers)} workers, "
          f"{sum(1 for w in workers if w['job'])} busy, {'ready' if status['ready'] else 'not ready'}")
    return 0


def run_status(args: argparse.Namespace) -> int:
    from ned_engine.metrics import from_json, render_prometheus

    with _client(args) as client:
        seconds = client.ping()
        welcome = client.welcome or {}
        jobs = client.list_jobs(limit=1000)
    status = _monitor_status(args)
    if args.prometheus:
        from ned_engine.monitor import fetch

        code, text = fetch(monitor_url(args.address, args.monitor) + "/metrics", timeout=args.timeout)
        sys.stdout.write(text if code == 200 else render_prometheus(from_json(status["metrics"])))
        return 0
    states = {s: sum(1 for j in jobs if j["state"] == s) for s in ("queued", "running", "done", "failed",
                                                                    "cancelled")}
    if args.json:
        print(json.dumps({"address": args.address, "ping_ms": seconds * 1000, "welcome": welcome, "jobs": states,
                          **status}, indent=1))
        return 0
    workers = status["workers"]
    print(f"engine   {args.address}  ned-engine {welcome.get('engine_version', '?')}  session "
          f"{welcome.get('session', '?')}  auth {welcome.get('auth', 'none')}  ping {seconds * 1000:.1f} ms")
    print(f"health   {'live' if status['live'] else 'NOT LIVE'}, {'ready' if status['ready'] else 'not ready'}"
          + (f" ({'; '.join(status['problems'])})" if status["problems"] else ""))
    print(f"workers  {len(workers)}: " + ", ".join(
        f"#{w['index']} {w['job'] or 'idle'}{' HUNG' if w['hung'] else ''}" for w in workers))
    print("jobs     " + ", ".join(f"{state} {count}" for state, count in states.items()))
    return 0


def run_shutdown(args: argparse.Namespace) -> int:
    from ned_engine.security import read_token

    path = args.token_file or default_journal() + ".token"
    token = read_token(path) if args.token_file or os.path.exists(path) else None  # admin keys need none
    with _client(args) as client:
        client.shutdown(token, drain=args.drain)
    print(f"engine at {args.address} is stopping" + (" after its running jobs" if args.drain else ""))
    return 0


def run_keygen(args: argparse.Namespace) -> int:
    from ned_protocol.keys import create_keypair

    public, secret = create_keypair(args.directory, args.name)
    print(f"public key {public} (give it to the other side)\nsecret key {secret} (owner-only; keep it here)")
    return 0


COMMANDS = {"serve": run_serve, "analyze": run_analyze, "render": run_render, "farm": run_farm, "ping": run_ping,
            "status": run_status, "health": run_health, "shutdown": run_shutdown, "keygen": run_keygen}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # the client logs what it also raises; without this, Python's last-resort handler would print it
    # as a second line next to the one-line error below (serve's basicConfig still shows it)
    logging.getLogger("ned_protocol").addHandler(logging.NullHandler())
    try:
        return COMMANDS[args.command](args)
    except (CoreError, NedError) as error:
        print(f"ned-engine: error: {error.one_line()}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("ned-engine: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
