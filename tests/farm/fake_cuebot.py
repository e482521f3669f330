"""A small stand-in for OpenCue's Cuebot, for one test: dispatch one chunk of a Cue job spec to a real RQD.

Runs in the farm tools' virtual environment (tests/farm/make_venv.sh), not the project's. It serves the
three calls RQD makes to its Cuebot (``RqdReportInterface``: ReportRqdStartup, ReportStatus,
ReportRunningFrameCompletion) on 127.0.0.1, reads a layer of the Cue XML that ``ned-engine farm
--target opencue`` wrote, replaces the frame tokens the way Cuebot does when it dispatches a task,
waits for RQD's startup report, sends RQD a ``LaunchFrame`` and waits for the frame's completion report.

    python fake_cuebot.py SPEC.xml --layer render --task 0 --rqd-port P --log-dir DIR --uid U --gid G

Prints ``CUEBOT_PORT <port>`` once it serves, then ``FRAME_COMPLETE <json>`` and exits 0 (1 on timeout).
"""

from __future__ import annotations

import argparse
import json
import pwd
import queue
import sys
import threading
import uuid
from concurrent import futures
from xml.etree import ElementTree as Et

import grpc
from opencue_proto import report_pb2, report_pb2_grpc, rqd_pb2, rqd_pb2_grpc


class Cuebot(report_pb2_grpc.RqdReportInterfaceServicer):
    """Records what RQD reports."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.reports: queue.Queue[report_pb2.FrameCompleteReport] = queue.Queue()
        self.statuses = 0

    def ReportRqdStartup(self, request, context):  # noqa: N802 - gRPC's method names
        self.started.set()
        return report_pb2.RqdReportRqdStartupResponse()

    def ReportStatus(self, request, context):  # noqa: N802
        self.statuses += 1
        return report_pb2.RqdReportStatusResponse()

    def ReportRunningFrameCompletion(self, request, context):  # noqa: N802
        self.reports.put(request.frame_complete_report)
        return report_pb2.RqdReportRunningFrameCompletionResponse()


def tasks(frames: str, chunk: int) -> list[tuple[int, int]]:
    """Cuebot's tasks of a contiguous layer range ``A-B`` (or one frame) in chunks."""
    first, _, last = frames.partition("-")
    start, end = int(first), int(last or first)
    return [(s, min(s + chunk - 1, end)) for s in range(start, end + 1, chunk)]


def run_frame(spec_text: str, layer_name: str, task: int, args: argparse.Namespace) -> rqd_pb2.RunFrame:
    """The RunFrame Cuebot would send for task ``task`` of ``layer_name``."""
    spec = Et.fromstring(spec_text)
    job = spec.find("job")
    layer = next(item for item in job.iter("layer") if item.get("name") == layer_name)
    first, last = tasks(layer.findtext("range"), int(layer.findtext("chunk")))[task]
    name = job.get("name")
    command = layer.findtext("cmd")
    for token, value in (("#FRAME_START#", first), ("#FRAME_END#", last), ("#IFRAME#", first),
                         ("#ZFRAME#", f"{first:04d}"), ("#FRAME_CHUNK#", int(layer.findtext("chunk"))),
                         ("#LAYER#", layer_name), ("#JOB#", name)):
        command = command.replace(token, str(value))
    environment = {key.get("name"): key.text or "" for key in layer.find("env")}
    environment.update({"CUE_JOB": name, "CUE_LAYER": layer_name, "CUE_IFRAME": str(first),
                        "CUE_FRAME": f"{first:04d}-{layer_name}", "CUE_SHOW": spec.findtext("show"),
                        "CUE_SHOT": spec.findtext("shot"), "CUE_USER": spec.findtext("user"),
                        "CUE_LOG_PATH": args.log_dir})
    frame_name = f"{first:04d}-{layer_name}"
    return rqd_pb2.RunFrame(
        resource_id=str(uuid.uuid4()), job_id=str(uuid.uuid4()), job_name=name, frame_id=str(uuid.uuid4()),
        frame_name=frame_name, layer_id=str(uuid.uuid4()), command=command, user_name=args.user,
        log_dir=args.log_dir, show=spec.findtext("show"), shot=spec.findtext("shot"),
        log_file=f"{name}.{frame_name}.rqlog", log_dir_file=f"{args.log_dir}/{name}.{frame_name}.rqlog",
        uid=args.uid, gid=args.gid, num_cores=100, ignore_nimby=True, environment=environment)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("spec")
    parser.add_argument("--task", action="append", required=True, help="LAYER:INDEX, in dispatch order")
    parser.add_argument("--rqd-port", type=int, required=True)
    parser.add_argument("--log-dir", required=True)
    parser.add_argument("--uid", type=int, required=True)
    parser.add_argument("--gid", type=int, required=True)
    parser.add_argument("--timeout", type=float, default=240.0)
    args = parser.parse_args()
    args.user = pwd.getpwuid(args.uid).pw_name
    with open(args.spec, encoding="utf-8") as handle:
        text = handle.read()
    frames = [run_frame(text, layer, int(index), args) for layer, _, index in (t.partition(":") for t in args.task)]

    cuebot = Cuebot()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    report_pb2_grpc.add_RqdReportInterfaceServicer_to_server(cuebot, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(f"CUEBOT_PORT {port}", flush=True)
    try:
        if not cuebot.started.wait(args.timeout):
            print("no startup report from RQD", file=sys.stderr)
            return 1
        for frame in frames:
            with grpc.insecure_channel(f"127.0.0.1:{args.rqd_port}") as channel:
                rqd_pb2_grpc.RqdInterfaceStub(channel).LaunchFrame(
                    rqd_pb2.RqdStaticLaunchFrameRequest(run_frame=frame), timeout=30)
            print(f"LAUNCHED {frame.frame_name}: {frame.command}", flush=True)
            try:
                report = cuebot.reports.get(timeout=args.timeout)
            except queue.Empty:
                print(f"no completion report for {frame.frame_name} from RQD", file=sys.stderr)
                return 1
            print("FRAME_COMPLETE " + json.dumps({
                "frame": report.frame.frame_name, "exit_status": report.exit_status,
                "exit_signal": report.exit_signal, "host": report.host.name, "log": frame.log_dir_file,
                "command": frame.command}), flush=True)
            if report.exit_status != 0 or report.exit_signal != 0:
                return 2
        return 0
    finally:
        server.stop(0)


if __name__ == "__main__":
    sys.exit(main())
