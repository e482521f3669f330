"""Runs in Ray's virtual environment (see test_ray.py): ``ned-engine serve --ray`` on a local cluster
(a job equal to a single run, a cancel reaching the actor) and on a two-node
``ray.cluster_utils.Cluster`` whose second node is killed mid-chunk."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import pytest
import standin
from helpers import EngineProcess, collect, exr_bytes, make_plate, spec_for, stamp
from ned_engine import jobs
from ned_engine.monitor import fetch

from ned_core.cache import AnalysisCache
from ned_core.pipeline import Pipeline

ray = pytest.importorskip("ray")  # (not an import statement: tests/ray would pass for Ray in import sorting)
Cluster = pytest.importorskip("ray.cluster_utils").Cluster
FRAMES = list(range(1001, 1013))
FAST_DEATH = {"health_check_initial_delay_ms": 0, "health_check_period_ms": 500,
              "health_check_failure_threshold": 3}


def _assert_identical_to_a_single_run(out: Path, name: str, spec: dict, folder: Path) -> None:
    pattern = str(folder / "ref.####.exr")
    plan = jobs.plan(spec, output=pattern)
    pipeline = Pipeline(plan.backends, cache=AnalysisCache(folder / "cache"), stages=standin.stages(plan.backends))
    result = pipeline.run(plan.shot, plan.curve, plan.output, mouth_preservation=plan.mouth_preservation)
    assert sorted(result.written) == FRAMES
    for frame, path in result.written.items():
        assert exr_bytes(out / f"{name}.{frame}.exr") == exr_bytes(Path(path)), f"frame {frame} differs"


def _status(engine: EngineProcess) -> dict:
    code, body = fetch(engine.monitor + "/status")
    assert code in (200, 503), body
    return json.loads(body)


def _journal_frames(path: Path, job: str) -> list[int]:
    db = sqlite3.connect(str(path))
    try:
        return [r[0] for r in db.execute("SELECT frame FROM frames WHERE job=? ORDER BY frame", (job,))]
    finally:
        db.close()


def _frames(events) -> list[int]:
    return [e.body["frame"] for e in events if e.type == "frame_ready"]


def test_one_actor_per_gpu_on_a_local_cluster(tmp_path):
    info = ray.init(address="local", num_cpus=2, num_gpus=1, include_dashboard=False,
                    object_store_memory=80 << 20)  # a new cluster, never one already running here
    try:
        plate = make_plate(tmp_path / "plate", range(FRAMES[0], FRAMES[-1] + 1), seed=3)
        engine = EngineProcess(tmp_path / "state", "--ray", info.address_info["gcs_address"], roots=(str(tmp_path),),
                               timeout=180)
        try:
            workers = _status(engine)["workers"]
            assert len(workers) == 1 and workers[0]["ready"]  # one GPU: one actor
            spec = spec_for(plate, str(tmp_path / "out" / "g.####.exr"),
                            backends={"options": {"track": {"lost": [1005]}}})
            with engine.client() as client:
                events = collect(client, client.submit(spec), timeout=180)
                # a cancel reaches the actor's chunk at its next frame
                slow = spec_for(plate, str(tmp_path / "cancel" / "c.####.exr"),
                                backends={"options": {"render": {"delay": 0.4}}})
                job = client.submit(slow)
                cancelled = []
                for event in client.events(job, timeout=180):
                    cancelled.append(event)
                    if event.type == "frame_ready" and len(_frames(cancelled)) == 1:
                        assert client.cancel(job) == "running"
                        at_cancel = len(list((tmp_path / "cancel").glob("c.*.exr")))
                    if event.terminal:
                        break
        finally:
            engine.stop()
    finally:
        ray.shutdown()
    assert cancelled[-1].type == "cancelled"
    written = _frames(cancelled)
    assert at_cancel <= len(written) <= at_cancel + 3 < len(FRAMES)  # the frame in hand and the writer's two
    assert sorted(int(p.name.split(".")[1]) for p in (tmp_path / "cancel").glob("c.*.exr")) == sorted(written)
    assert events[-1].type == "done" and events[-1].body["lost_frames"] == [1005]
    assert sorted(_frames(events)) == FRAMES
    _assert_identical_to_a_single_run(tmp_path / "out", "g", spec, tmp_path / "ref")


def test_a_node_killed_mid_chunk_loses_no_frame(tmp_path):
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False,
                                                            "object_store_memory": 80 << 20,
                                                            "_system_config": FAST_DEATH})
    try:
        doomed = cluster.add_node(num_cpus=1, object_store_memory=80 << 20)
        cluster.wait_for_nodes()
        plate = make_plate(tmp_path / "plate", range(FRAMES[0], FRAMES[-1] + 1), seed=4)
        engine = EngineProcess(tmp_path / "state", "--ray", cluster.address, "--workers", "2",
                               roots=(str(tmp_path),), timeout=180)
        try:
            workers = _status(engine)["workers"]
            assert {w["node"] for w in workers} == {cluster.head_node.node_id, doomed.node_id}  # one per node
            out = tmp_path / "out"
            spec = spec_for(plate, str(out / "n.####.exr"), backends={"options": {"render": {"delay": 0.4}}})
            with engine.client() as client:
                job = client.submit(spec)
                seen = []
                for event in client.events(job, timeout=180):
                    seen.append(event)
                    if event.type == "frame_ready" or event.terminal:
                        break
                assert seen[-1].type == "frame_ready"
                busy = {w["node"] for w in _status(engine)["workers"] if w["job"] == job}
                assert doomed.node_id in busy, "the doomed node runs a chunk of the job"
                cluster.remove_node(doomed, allow_graceful=False)
                killed = time.monotonic()
                early = {f: stamp(out / f"n.{f}.exr") for f in _frames(seen)}
                rest = collect(client, job, timeout=300)
            events = seen + rest
            assert events[-1].type == "done", events[-1].body
            assert sorted(_frames(events)) == FRAMES  # none lost, none reported twice
            assert _journal_frames(engine.journal, job) == FRAMES
            assert {f: stamp(out / f"n.{f}.exr") for f in early} == early  # frames from before stay as written
            assert not list(out.glob(".*.tmp"))
            log = engine.stderr()
            assert "died" in log, log[-3000:]
            print(f"shot completed {time.monotonic() - killed:.1f} s after the node was killed")
        finally:
            engine.stop()
        _assert_identical_to_a_single_run(out, "n", spec, tmp_path / "ref")
    finally:
        ray.shutdown()
        cluster.shutdown()


if __name__ == "__main__":
    raise SystemExit(pytest.main([__file__, "-q"]))
