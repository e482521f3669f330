"""PROTOCOL.md's generated tables match schema.py (regenerate with `python -m ned_protocol.spec --write`)."""

from __future__ import annotations

from pathlib import Path

import pytest
from ned_protocol import schema, spec

PROTOCOL_MD = spec.DEFAULT_PATH  # protocol/PROTOCOL.md beside the package


def test_protocol_md_matches_the_schema() -> None:
    stale = spec.stale_blocks(PROTOCOL_MD.read_text(encoding="utf-8"))
    assert not stale, (f"{PROTOCOL_MD} is out of date with ned_protocol/schema.py (blocks: "
                       f"{', '.join(stale)}); run `{spec.REGENERATE}` and commit the result")


def test_every_message_type_is_documented() -> None:
    text = PROTOCOL_MD.read_text(encoding="utf-8")
    for name in schema.MESSAGES:
        assert f"#### `{name}`" in text
    major, minor = schema.PROTOCOL_VERSION
    assert f"Protocol version: **{major}.{minor}**" in text
    assert f"- **{major}.{minor}**" in text  # the changelog names the current version


def test_a_drifted_table_is_found_and_rewritten(tmp_path: Path) -> None:
    text = PROTOCOL_MD.read_text(encoding="utf-8")
    drifted = text.replace("| `client` |", "| `client_name` |", 1)
    assert drifted != text and spec.stale_blocks(drifted) == ["messages"]
    assert spec.update(drifted) == text
    copy = tmp_path / "PROTOCOL.md"
    copy.write_text(drifted, encoding="utf-8")
    assert spec.main(["--check", str(copy)]) == 1
    assert spec.main(["--write", str(copy)]) == 0
    assert copy.read_text(encoding="utf-8") == text and spec.main(["--check", str(copy)]) == 0


def test_missing_markers_are_an_error() -> None:
    with pytest.raises(ValueError, match="spec:begin envelope"):
        spec.update("<!-- spec:begin errors -->\n<!-- spec:end errors -->\n")
