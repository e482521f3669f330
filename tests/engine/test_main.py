"""The ``ned-engine`` commands that check on an engine: ping, status (and Prometheus counters), health
(a hung worker makes it fail), shutdown and keygen; and the HTTP monitor they read."""

from __future__ import annotations

import subprocess
import sys
import time

from ned_engine.monitor import fetch

from .helpers import ROOT, EngineProcess, collect, make_plate, spec_for


def ned_engine(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ned_engine.main", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=str(ROOT))


def test_ping(engine):
    result = ned_engine("ping", engine.address)
    assert result.returncode == 0 and result.stdout.startswith(f"pong from {engine.address} in ")


def test_ping_with_no_engine_there_fails_in_one_line():
    result = ned_engine("ping", "tcp://127.0.0.1:9", "--timeout", "1")
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("ned-engine: error: timeout:")


def test_status_health_and_prometheus(engine, plate, out):
    with engine.client() as client:
        job = client.submit(spec_for(plate, str(out / "s.####.exr")))
        collect(client, job)
    status = ned_engine("status", engine.address, "--monitor", engine.monitor)
    assert status.returncode == 0, status.stderr
    assert "live, ready" in status.stdout and "workers  2:" in status.stdout and "done " in status.stdout
    text = ned_engine("status", engine.address, "--monitor", engine.monitor, "--prometheus").stdout
    assert "# TYPE ned_engine_frames_written_total counter" in text
    values = {line.split(" ")[0]: float(line.split(" ")[1]) for line in text.splitlines()
              if line and not line.startswith("#")}
    assert values["ned_engine_jobs_submitted_total"] >= 1 and values["ned_engine_frames_written_total"] >= 8
    assert values['ned_engine_jobs_finished_total{state="done"}'] >= 1
    assert values['ned_engine_stage_seconds_total{stage="render"}'] > 0
    assert values["ned_engine_workers"] == 2 and values["ned_engine_up"] == 1
    health = ned_engine("health", engine.address, "--monitor", engine.monitor, "--ready")
    assert health.returncode == 0 and health.stdout.startswith("ok: ")
    assert fetch(engine.monitor + "/healthz")[0] == 200 and fetch(engine.monitor + "/readyz")[0] == 200
    assert fetch(engine.monitor + "/nope")[0] == 404


def test_health_reports_a_hung_worker(tmp_path):
    plate = make_plate(tmp_path / "plate", range(1001, 1003))
    process = EngineProcess(tmp_path / "state", "--hang-timeout", "0.5", roots=(str(tmp_path),))
    try:
        with process.client() as client:
            job = client.submit(spec_for(plate, str(tmp_path / "h.####.exr"),
                                         backends={"options": {"render": {"delay": 2.0}}}))
            for event in client.events(job, timeout=30):
                if event.type == "progress" and event.body["stage"] == "analyze" and event.body["done"] == 2:
                    break
            time.sleep(1.0)  # the first frame takes 2 s: the worker's beat is stale by now
            result = ned_engine("health", process.address, "--monitor", process.monitor)
            assert result.returncode == 1
            assert result.stdout.startswith("unhealthy: worker 0 silent for") and job in result.stdout
            code, text = fetch(process.monitor + "/healthz")
            assert code == 503 and "worker 0" in text
            assert ned_engine("ping", process.address).returncode == 0  # the socket loop still answers
            client.cancel(job)
    finally:
        process.stop()


def test_shutdown_command_reads_the_token_file(tmp_path):
    process = EngineProcess(tmp_path / "state", roots=(str(tmp_path),))
    refused = ned_engine("shutdown", process.address, "--token-file", str(tmp_path / "wrong"))
    assert refused.returncode == 1 and "invalid_option" in refused.stderr
    (tmp_path / "wrong").write_text("nope\n")
    assert "unauthorized" in ned_engine("shutdown", process.address, "--token-file", str(tmp_path / "wrong")).stderr
    result = ned_engine("shutdown", process.address, "--token-file", process.token_file, "--drain")
    assert result.returncode == 0 and "stopping" in result.stdout
    assert process.proc.wait(20) == 0


def test_keygen(tmp_path):
    result = ned_engine("keygen", str(tmp_path), "studio")
    assert result.returncode == 0
    assert (tmp_path / "studio.key").exists()
    assert oct((tmp_path / "studio.key_secret").stat().st_mode & 0o777) == "0o600"
    assert ned_engine("keygen", str(tmp_path), "studio").returncode == 1  # never overwritten
