"""The ETA in ``progress`` events: ``Eta`` on a fake clock, then through a stand-in engine."""

from __future__ import annotations

import pytest
from ned_engine.workers import Eta

from .helpers import collect, spec_for


def test_the_first_rendered_frame_already_gives_a_full_estimate():
    # 4 frames analysed in 4 s, then 1 s of fit/edit and 1 s of render for frame 1 of 30
    eta = Eta(start=100.0, render_frames=30)
    for done in range(1, 5):
        eta.analyzed(done, 4, 100.0 + done)
    assert eta.rendered(1, 30, 106.0) == pytest.approx(2.0 * 29)  # not ~0: the clock started at analysis end
    assert eta.rendered(30, 30, 130.0) == 0.0


def test_analysis_estimates_the_render_still_to_come():
    eta = Eta(start=0.0, render_frames=10, render_ratio=3.0)
    assert eta.analyzed(0, 10, 5.0) is None
    # 1 s per analysed frame: 8 more to analyse, then 10 to render at 3 s each
    assert eta.analyzed(2, 10, 2.0) == pytest.approx(8.0 + 30.0)
    eta.analyzed(10, 10, 10.0)
    eta.rendered(5, 10, 20.0)  # 2 s per rendered frame
    assert eta.learned_ratio() == pytest.approx(2.0)


def test_a_cached_analysis_times_the_render_from_the_run_start():
    eta = Eta(start=0.0, render_frames=8)
    assert eta.rendered(2, 8, 1.0) == pytest.approx(0.5 * 6)
    assert eta.learned_ratio() is None


def test_progress_events_carry_an_eta_from_the_first_frame(engine, plate, out):
    # a fresh cache key (lost frame option) so this job analyses; each rendered frame takes >= 50 ms
    spec = spec_for(plate, str(out / "e.####.exr"),
                    backends={"options": {"track": {"lost": [1008]}, "render": {"delay": 0.05}}})
    with engine.client() as client:
        events = collect(client, client.submit(spec))
    assert events[-1].type == "done"
    progress = [e.body for e in events if e.type == "progress"]
    analysis = [p for p in progress if p["stage"] == "analyze"]
    render = [p for p in progress if p["stage"] == "render"]
    assert analysis and all(p["eta"] is not None for p in analysis)
    assert [p["done"] for p in render] == list(range(1, 9))
    assert render[0]["eta"] > 0  # 7 frames of >= 50 ms each are still to come
    assert render[-1]["eta"] == 0.0
