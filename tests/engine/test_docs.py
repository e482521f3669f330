"""docs/engine.md's five-line Python example runs as written against a live engine."""

from __future__ import annotations

import contextlib
import io
import re

from .helpers import ROOT


def test_the_five_line_example(engine, plate, out):
    text = (ROOT / "docs" / "engine.md").read_text()
    block = re.search(r"## Submit a job from Python \(five lines\)\n\n```python\n(.*?)```", text, re.S).group(1)
    assert len(block.strip().splitlines()) == 6  # five statements; one wraps
    code = (block.replace("tcp://127.0.0.1:7741", engine.address)
            .replace("/shows/sh010/plate/sh010.####.exr", plate)
            .replace("/shows/sh010/ned/sh010_ned.####.exr", str(out / "sh010_ned.####.exr")))
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code, "docs/engine.md", "exec"), {})
    assert printed.getvalue().splitlines()[-1].startswith("done {")
    assert len(list(out.glob("sh010_ned.*.exr"))) == 8
