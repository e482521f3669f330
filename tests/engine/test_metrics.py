"""Counters and their Prometheus text."""

from __future__ import annotations

import pytest
from ned_engine.metrics import UNLABELLED, Metrics, from_json, render_prometheus, to_json


def test_prometheus_text():
    metrics = Metrics()
    metrics.inc("frames_written_total", 3)
    metrics.inc("errors_total", code="no_face")
    metrics.inc("stage_seconds_total", 1.25, stage="render")
    metrics.gauges = lambda: {"workers": {(): 2.0}}
    text = metrics.prometheus()
    assert "# TYPE ned_engine_frames_written_total counter\nned_engine_frames_written_total 3\n" in text
    assert 'ned_engine_errors_total{code="no_face"} 1' in text
    assert 'ned_engine_stage_seconds_total{stage="render"} 1.25' in text
    assert "# TYPE ned_engine_workers gauge\nned_engine_workers 2" in text
    assert render_prometheus(from_json(to_json(metrics.snapshot()))) == text
    with pytest.raises(KeyError):
        metrics.inc("made_up_total")


def test_unlabelled_counters_are_reported_at_zero_before_anything_happens():
    text = Metrics().prometheus()
    for name in UNLABELLED:
        assert f"# TYPE ned_engine_{name} counter\nned_engine_{name} 0\n" in text
    assert "ned_engine_errors_total" not in text  # labelled series appear with their first value
