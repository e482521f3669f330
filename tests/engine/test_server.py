"""The engine as clients see it: a real ``ned-engine serve`` process on 127.0.0.1 (stand-in analysis stages,
real warp, composite and EXR writing), driven through ``ned_protocol.Client``."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import OpenImageIO as oiio
import pytest
from ned_engine import jobs
from ned_protocol.errors import (
    BusyError,
    ForbiddenPathError,
    InputNotFoundError,
    InvalidOptionError,
    LimitExceededError,
    UnauthorizedError,
    UnknownBackendError,
    UnknownJobError,
)

from ned_core.cache import AnalysisCache
from ned_core.io import read_exr_channels
from ned_core.pipeline import Backends, Pipeline

from . import standin
from .helpers import EngineProcess, collect, make_plate, spec_for

FRAMES = list(range(1001, 1009))


def _frames(events, kind="frame_ready"):
    """The frames of ``kind`` events, in the order they came: the order frames finished, which with
    several worker processes sharing a shot is not frame order (``sorted(...) == FRAMES``: each once)."""
    return [e.body["frame"] for e in events if e.type == kind]


def _reference(tmp_path: Path, spec: dict) -> dict[int, bytes]:
    """The same job run in-process with the same stand-in stages: the bytes each frame must have."""
    pattern = str(tmp_path / "reference" / "ref.####.exr")
    plan = jobs.plan(spec, output=pattern)
    plan.output.pattern = pattern
    pipeline = Pipeline(plan.backends, cache=AnalysisCache(tmp_path / "ref-cache"), stages=standin.stages(Backends()))
    result = pipeline.run(plan.shot, plan.curve, plan.output, mouth_preservation=plan.mouth_preservation)
    return {f: Path(p).read_bytes() for f, p in result.written.items()}


def test_keyframed_job_end_to_end(engine, plate, out, tmp_path):
    spec = spec_for(plate, str(out / "edit.####.exr"), label="sh010 NED1")
    with engine.client() as client:
        welcome = client.hello()
        assert welcome["auth"] == "none" and "mediapipe" in welcome["backends"]["track"]
        job = client.submit(spec)
        events = collect(client, job)
        info = client.status(job)
    seqs = [e.seq for e in events]
    assert seqs == sorted(set(seqs)), "seq increases"
    assert [e.type for e in events if e.terminal] == ["done"] and events[-1].type == "done"
    assert sorted(_frames(events)) == FRAMES  # every frame exactly once
    done = events[-1].body
    assert done["frames_written"] == 8 and done["lost_frames"] == [] and done["output"] == spec["output"]["pattern"]
    stages = [e.body["stage"] for e in events if e.type == "progress"]
    assert stages[0] in ("queued", "load") and stages[-1] == "render"
    assert ("analyze" in stages) != done["analysis_cached"]  # another test may have analysed this plate
    assert info["state"] == "done" and info["label"] == "sh010 NED1" and info["last_seq"] == events[-1].seq
    reference = _reference(tmp_path, spec)
    for frame in FRAMES:
        path = out / f"edit.{frame}.exr"
        assert path.read_bytes() == reference[frame], f"frame {frame} differs from the in-process run"
    channels = read_exr_channels(str(out / "edit.1004.exr"))
    assert {"R", "G", "B", "A", "ned.matte", "stmap.u", "stmap.v"} <= set(channels)
    assert channels["ned.matte"].max() > 0


def test_keyed_mouth_preservation_end_to_end(engine, plate, out, tmp_path):
    keys = [{"frame": 1001, "weights": {"happy": 1.0}, "mouth_preservation": 1.0},
            {"frame": 1004, "weights": {"happy": 1.0}, "mouth_preservation": 0.0},
            {"frame": 1006, "weights": {"happy": 1.0}}]
    spec = spec_for(plate, str(out / "mouth.####.exr"), keys=keys, interpolation="step")
    kept = spec_for(plate, str(out / "kept.####.exr"), keys=[{"frame": 1001, "weights": {"happy": 1.0}}])
    with engine.client() as client:
        assert tuple(client.hello()["protocol"]) >= (1, 2)
        events = [collect(client, client.submit(s)) for s in (spec, kept)]
    assert [e[-1].type for e in events] == ["done", "done"]
    reference = _reference(tmp_path, spec)
    for frame in FRAMES:  # two workers share the shot: every frame is the single in-process run's
        assert (out / f"mouth.{frame}.exr").read_bytes() == reference[frame], frame
    # step keys: preservation 1 on 1001-1003 (the plate's mouth), 0 from 1004 on, until 1006's key takes
    # the job's (footage: 1)
    same = [(out / f"mouth.{f}.exr").read_bytes() == (out / f"kept.{f}.exr").read_bytes() for f in FRAMES]
    assert same == [True, True, True, False, False, True, True, True]


def test_two_clients_see_only_their_own_jobs_unless_they_watch(engine, plate, out):
    with engine.client() as first, engine.client() as second, engine.client() as watcher:
        job_a = first.submit(spec_for(plate, str(out / "a.####.exr")))
        job_b = second.submit(spec_for(plate, str(out / "b.####.exr"), mouth_preservation=0.5))
        watcher.watch(job_a)
        events_a = collect(first, job_a)
        events_b = collect(second, job_b)
        watched = collect(watcher, job_a)
        # each connection got nothing of the other job
        assert not list(first.events(timeout=0.3)) and not list(second.events(timeout=0.3))
    assert {e.job for e in events_a} == {job_a} and {e.job for e in events_b} == {job_b}
    assert events_a[-1].type == events_b[-1].type == "done"
    assert watched[-1].type == "done" and {e.job for e in watched} == {job_a}


def test_cancel_mid_job_keeps_the_frames_written(engine, engine_root, out):
    # 24 frames: two workers share the shot, and each has frames in flight (one rendering, two in its
    # writer) when its first is reported, so only a longer shot shows where the cancel stopped it; a
    # slow stand-in frame, so a loaded machine's event lag cannot outrun the two chunks
    long_plate = make_plate(engine_root / "plate24", range(1001, 1025), seed=24)
    spec = spec_for(long_plate, str(out / "c.####.exr"), backends={"options": {"render": {"delay": 0.5}}})
    with engine.client() as client:
        job = client.submit(spec)
        events = []
        for event in client.events(job, timeout=30):
            events.append(event)
            if event.type == "frame_ready":
                assert client.cancel(job) in ("running", "cancelled")
            if event.terminal:
                break
        assert client.status(job)["state"] == "cancelled"
        assert client.cancel(job) == "cancelled"  # cancelling an ended job is not an error
    assert events[-1].type == "cancelled"
    written = _frames(events)
    assert 1 <= len(written) < 24 and events[-1].body["frames_written"] == len(written)
    assert sorted(int(p.name.split(".")[1]) for p in out.glob("c.*.exr")) == sorted(written)
    assert len(set(written)) == len(written)


def test_inline_frames_are_paced_by_credits(engine, plate, out):
    spec = spec_for(plate, str(out / "i.####.exr"), inline=True)
    with engine.client(auto_credit=False, credit_window=1) as client:
        job = client.submit(spec)
        first = [e for e in collect_until(client, job, lambda e: e.type == "frame_ready")]
        deadline = time.monotonic() + 30
        while client.status(job)["state"] != "done" and time.monotonic() < deadline:
            time.sleep(0.1)
        # the job is done, but with no credit left nothing behind the held frame may arrive
        waiting = list(client.events(job, timeout=0.5))
        assert not [e for e in waiting if e.type == "frame_ready" or e.terminal]
        client.grant_credit(job, 2)
        two = collect_until(client, job, lambda e: e.type == "frame_ready" and e.body["frame"] == 1003)
        more = list(client.events(job, timeout=0.3))
        assert not [e for e in more if e.type == "frame_ready" or e.terminal]
        client.grant_credit(job, 10)
        rest = collect(client, job)
    events = first + waiting + two + more + rest
    ready = [e for e in events if e.type == "frame_ready"]
    assert sorted(e.body["frame"] for e in ready) == FRAMES and events[-1].type == "done"
    for event in ready:
        assert event.body["inline"] and event.payload is not None and event.body["size"] == len(event.payload)
        assert event.payload == (out / f"i.{event.body['frame']}.exr").read_bytes()


def collect_until(client, job, stop, timeout=30.0):
    events = []
    for event in client.events(job, timeout=timeout):
        events.append(event)
        if stop(event) or event.terminal:
            break
    return events


def test_inline_plate_and_inline_delivery_match_the_path_job(engine, plate, out):
    path_spec = spec_for(plate, str(out / "p.####.exr"))
    plate_files = [Path(plate.replace("####", str(f))).read_bytes() for f in FRAMES]
    inline_spec = {k: v for k, v in path_spec.items() if k != "plate"}
    inline_spec.update(plate_frames=FRAMES, plate_format="exr", output={"inline": True})
    with engine.client(credit_window=4) as client:
        path_job = client.submit(path_spec)
        inline_job = client.submit(inline_spec, payloads=plate_files)
        path_events = collect(client, path_job)
        inline_events = collect(client, inline_job)
        info = client.status(inline_job)
    assert path_events[-1].type == inline_events[-1].type == "done"
    assert "plate" not in info and "output" not in info
    payloads = {e.body["frame"]: e.payload for e in inline_events if e.type == "frame_ready"}
    assert all(e.body["path"] is None for e in inline_events if e.type == "frame_ready")
    assert sorted(payloads) == FRAMES
    for frame, data in payloads.items():
        assert data == (out / f"p.{frame}.exr").read_bytes()


def test_a_job_writes_the_output_colorspace_it_names(engine, plate, out):
    spec = spec_for(plate, str(out / "c.####.exr"))
    spec["output"]["colorspace"] = "lin_rec709_scene"
    with engine.client() as client:
        events = collect(client, client.submit(spec))
    assert events[-1].type == "done"
    image = oiio.ImageInput.open(str(out / "c.1001.exr"))
    header = image.spec()
    image.close()
    assert header.get_string_attribute("ned:colorspace") == "Linear Rec.709 (sRGB)"
    assert header.get_string_attribute("ned:source_colorspace") == "ACEScg"  # the plate's, converted
    assert {str(f) for f in header.channelformats} <= {"float"}  # converted half values need float
    assert str(header.format) == "float"


def test_same_idempotency_key_returns_the_same_job(engine, plate, out):
    spec = spec_for(plate, str(out / "k.####.exr"))
    with engine.client() as client:
        job = client.submit(spec, idempotency_key="sh010-NED1-v3")
        collect(client, job)
    with engine.client() as again:
        assert again.submit(spec, idempotency_key="sh010-NED1-v3") == job
        replay = collect(again, job)  # a duplicate subscribes from the first kept event
        assert len(again.list_jobs()) >= 1
    assert sorted(_frames(replay)) == FRAMES and replay[-1].type == "done"


def test_an_idempotency_key_reused_for_another_spec_is_refused(engine, plate, out):
    spec = spec_for(plate, str(out / "k.####.exr"))
    with engine.client() as client:
        job = client.submit(spec, idempotency_key="sh020-v1")
        other = dict(spec, keys=[{"frame": 1001, "weights": {"sad": 1.0}}])
        with pytest.raises(InvalidOptionError, match=f"belongs to job {job}") as caught:
            client.submit(other, idempotency_key="sh020-v1")
        assert caught.value.field == "idempotency_key"
        assert client.submit(spec, idempotency_key="sh020-v1") == job  # the same spec is still the same job
        assert collect(client, job)[-1].type == "done"


def test_a_job_cancelled_during_analysis_reports_no_frames_written(engine, plate, out):
    spec = spec_for(plate, str(out / "a.####.exr"), backends={"options": {"track": {"delay": 0.2}}})
    with engine.client() as client:
        job = client.submit(spec)
        for event in client.events(job, timeout=30):
            if event.type == "progress" and event.body["stage"] == "analyze" and event.body["done"] >= 2:
                client.cancel(job)
            if event.terminal:
                break
        assert event.type == "cancelled" and event.body["frames_written"] == 0
        info = client.status(job)
        listed = [i for i in client.list_jobs() if i["job"] == job]
    assert info["state"] == "cancelled" and info["stage"] == "analyze"
    assert info["done"] == 0 and info["total"] == 8  # frames written, not frames analysed
    assert listed == [info]
    assert not list(out.glob("a.*.exr"))


def test_client_that_disconnects_mid_job_can_resume_it(engine, plate, out):
    spec = spec_for(plate, str(out / "d.####.exr"), backends={"options": {"render": {"delay": 0.1}}})
    client = engine.client()
    job = client.submit(spec)
    seen = collect_until(client, job, lambda e: e.type == "frame_ready")
    client.close()  # gone mid-job: the job must carry on
    last = seen[-1].seq
    with engine.client() as other:
        deadline = time.monotonic() + 30
        while other.status(job)["state"] != "done" and time.monotonic() < deadline:
            time.sleep(0.1)
        assert other.resume(job, after_seq=last)["state"] == "done"
        missed = collect(other, job)
    assert all(e.seq > last for e in missed)
    assert sorted(_frames(seen) + _frames(missed)) == FRAMES and missed[-1].type == "done"


def test_paths_outside_the_allowed_roots_are_refused(engine, plate, out, tmp_path):
    outside = make_plate(tmp_path / "outside", range(1001, 1003))
    escape = str(out / ".." / ".." / ".." / tmp_path.name / "outside" / "plate.####.exr")
    link = out / "link"
    link.symlink_to(tmp_path / "outside")
    frame_link = out / "mixed"
    frame_link.mkdir()
    (frame_link / "plate.1001.exr").symlink_to(tmp_path / "outside" / "plate.1001.exr")
    cases = [
        (spec_for(outside, str(out / "x.####.exr")), "spec.plate"),
        (spec_for(escape, str(out / "x.####.exr")), "spec.plate"),
        (spec_for(str(link / "plate.####.exr"), str(out / "x.####.exr")), "spec.plate"),
        (spec_for(str(frame_link / "plate.####.exr"), str(out / "x.####.exr")), "spec.plate"),
        (spec_for(plate, str(tmp_path / "x.####.exr")), "spec.output.pattern"),
        (spec_for(plate, str(link / "x.####.exr")), "spec.output.pattern"),
        (spec_for(plate, "relative/x.####.exr"), "spec.output.pattern"),
        (spec_for(plate, str(out / "x.####.exr"), mask="/etc/passwd"), "spec.mask"),
    ]
    with engine.client() as client:
        for spec, field in cases:
            with pytest.raises(ForbiddenPathError) as error:
                client.submit(spec)
            assert error.value.field == field, error.value.message
        assert client.ping() > 0  # still serving
    assert not list(tmp_path.glob("x.*"))


def test_bad_jobs_are_refused_at_submit(engine, plate, out):
    with engine.client() as client:
        with pytest.raises(InputNotFoundError):
            client.submit(spec_for(plate.replace("plate.####", "none.####"), str(out / "x.####.exr")))
        with pytest.raises(UnknownBackendError) as error:
            client.submit(spec_for(plate, str(out / "x.####.exr"), backends={"track": "magic"}))
        assert error.value.field == "spec.backends.track"
        with pytest.raises(InvalidOptionError) as error:
            client.submit(spec_for(plate, str(out / "x.exr")))
        assert error.value.field == "spec.output.pattern"
        with pytest.raises(InvalidOptionError):
            client.submit(spec_for(plate, plate))  # would overwrite the plate
        with pytest.raises(InvalidOptionError):
            client.submit(spec_for(plate, str(out / "x.####.exr"), colorspace="no such space"))
        bad_output = spec_for(plate, str(out / "x.####.exr"))
        bad_output["output"]["colorspace"] = "no such space"
        with pytest.raises(InvalidOptionError) as error:
            client.submit(bad_output)
        assert error.value.field == "spec.output.colorspace"
        with pytest.raises(UnknownJobError):
            client.status("j-000000000000")
        with pytest.raises(UnauthorizedError):
            client.shutdown("not the token")


def test_a_job_that_fails_reports_the_error(engine, out):
    broken = out / "broken"
    make_plate(broken, range(1001, 1004))
    data = (broken / "plate.1002.exr").read_bytes()
    (broken / "plate.1002.exr").write_bytes(data[: len(data) // 2])
    with engine.client() as client:
        job = client.submit(spec_for(str(broken / "plate.####.exr"), str(out / "f.####.exr")))
        events = collect(client, job)
        info = client.status(job)
    assert events[-1].type == "failed"
    error = events[-1].error()
    assert error.code == "corrupt_image" and "plate.1002.exr" in (error.path or error.message)
    assert info["state"] == "failed" and info["code"] == "corrupt_image"


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """One worker, tight limits: queueing, priorities, limits and shutdown."""
    root = tmp_path_factory.mktemp("small")
    process = EngineProcess(root / "state", "--max-frames", "20", "--max-queued-per-client", "4",
                            "--max-payload-mb", "1", roots=(str(root),))
    process.root = root
    process.plate = make_plate(root / "plate", range(1001, 1005))
    yield process
    process.stop()


def test_limits_per_job_and_per_client(small):
    slow = {"backends": {"options": {"render": {"delay": 0.4}}}}
    with small.client() as client:
        with pytest.raises(LimitExceededError) as error:
            client.submit(spec_for(small.plate, str(small.root / "l.####.exr"), frame_range=[1001, 1030]))
        assert error.value.field == "spec.frame_range"
        jobs_ = [client.submit(spec_for(small.plate, str(small.root / f"q{i}.####.exr"), **slow)) for i in range(4)]
        with pytest.raises(LimitExceededError):
            client.submit(spec_for(small.plate, str(small.root / "q9.####.exr")))
        with pytest.raises(BusyError):  # another live job writes there
            client.submit(spec_for(small.plate, str(small.root / "q2.####.exr")))
        for job in jobs_:
            client.cancel(job)
        for job in jobs_:
            collect(client, job)


def test_priorities_and_cancelling_a_queued_job(small):
    slow = {"backends": {"options": {"render": {"delay": 0.2}}}}
    with small.client() as client:
        blocker = client.submit(spec_for(small.plate, str(small.root / "b.####.exr"), **slow))
        low = client.submit(spec_for(small.plate, str(small.root / "lo.####.exr"), priority=-5))
        high = client.submit(spec_for(small.plate, str(small.root / "hi.####.exr"), priority=10))
        doomed = client.submit(spec_for(small.plate, str(small.root / "x.####.exr"), priority=-10))
        assert client.cancel(doomed) == "cancelled"
        starts, ended = [], set()
        for event in client.events(timeout=30):
            if event.type == "progress" and event.body["stage"] == "load":
                starts.append(event.job)
            if event.job == doomed:
                assert event.type in ("progress", "cancelled")
            if event.terminal:
                ended.add(event.job)
            if ended >= {blocker, low, high}:
                break
    assert starts == [blocker, high, low]
    assert not list(small.root.glob("x.*.exr"))


def test_shutdown_with_the_token(small):
    token = Path(small.token_file).read_text().strip()
    assert oct(os.stat(small.token_file).st_mode & 0o777) == "0o600"
    with small.client() as client:
        client.shutdown(token)
    assert small.proc.wait(20) == 0


def test_output_compression_and_depth_as_asked(engine, plate, out):
    spec = spec_for(plate, None)
    spec["output"] = {"pattern": str(out / "m.####.exr"), "compression": "piz", "half": False}
    with engine.client() as client:
        job = client.submit(spec)
        assert collect(client, job)[-1].type == "done"
    spec = oiio.ImageInput.open(str(out / "m.1001.exr")).spec()
    assert spec.getattribute("compression") == "piz"
    channels = read_exr_channels(str(out / "m.1001.exr"))  # RGBA, then the layers' parts
    assert len(channels) == 7 and all(c.shape == (120, 160) and np.isfinite(c).all() for c in channels.values())
