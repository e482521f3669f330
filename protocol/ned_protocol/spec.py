"""Renders PROTOCOL.md's reference tables from the schema, so the written spec cannot drift from code.

PROTOCOL.md keeps each generated block between ``<!-- spec:begin NAME -->`` and
``<!-- spec:end NAME -->`` markers; everything outside them is hand-written prose.

    python -m ned_protocol.spec            # print the generated blocks
    python -m ned_protocol.spec --check    # exit 1 when PROTOCOL.md is stale
    python -m ned_protocol.spec --write    # rewrite the blocks in PROTOCOL.md

Imports only ``ned_protocol``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any, Callable

from ned_protocol.errors import ALL_ERRORS, NedError
from ned_protocol.examples import example_message
from ned_protocol.fields import Field, Struct
from ned_protocol.schema import ENVELOPE, LIMIT_DOCS, LIMITS, MESSAGES, PROTOCOL_VERSION, MessageType

DEFAULT_PATH = Path(__file__).resolve().parents[1] / "PROTOCOL.md"
REGENERATE = "python -m ned_protocol.spec --write"
_BLOCK = re.compile(r"(<!-- spec:begin (?P<name>[a-z]+) -->\n)(?P<body>.*?)(<!-- spec:end (?P=name) -->)",
                    re.DOTALL)
_NOTE = f"<!-- generated from ned_protocol/schema.py by `{REGENERATE}`: do not edit by hand -->\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _field_rows(fields: dict[str, Field]) -> list[tuple[str, ...]]:
    rows = []
    for name, spec in fields.items():
        kind = spec.type.describe() + (" or nil" if spec.nullable else "")
        default = "" if spec.default is None else f"`{json.dumps(spec.default)}`"
        doc = spec.doc + (f" (since {spec.since[0]}.{spec.since[1]})" if spec.since > (1, 0) else "")
        rows.append((f"`{name}`", kind, "yes" if spec.required else "", default, doc))
    return rows


def _fields_table(fields: dict[str, Field]) -> str:
    if not fields:
        return "No body fields (`body` is `{}`).\n"
    return _table(("field", "type", "required", "default", "meaning"), _field_rows(fields))


def _pretty(value: Any, indent: int = 0, width: int = 100) -> str:
    """JSON, on one line where it fits in ``width``, else one item per line."""
    text = json.dumps(value, ensure_ascii=False)
    if len(text) + indent <= width or not isinstance(value, (dict, list)) or not value:
        return text
    pad = " " * (indent + 2)
    if isinstance(value, dict):
        items = [f"{pad}{json.dumps(k)}: {_pretty(v, indent + 2, width)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + " " * indent + "}"
    items = [pad + _pretty(v, indent + 2, width) for v in value]
    return "[\n" + ",\n".join(items) + "\n" + " " * indent + "]"


def _example(name: str) -> str:
    message, payloads = example_message(name)
    lines = ["frame 0 (msgpack map, shown as JSON):", _pretty(message)]
    lines += [f"frame {i + 1}: <{len(p)} bytes of payload>" for i, p in enumerate(payloads)]
    return "```\n" + "\n".join(lines) + "\n```\n"


def _job_text(spec: MessageType) -> str:
    return {"none": "nil", "required": "the job's id", "optional": "a job id or nil"}[spec.job]


def render_envelope() -> str:
    rows = []
    for name, spec in ENVELOPE.items():
        kind = "map" if name == "body" else spec.type.describe() + (" or nil" if spec.nullable else "")
        rows.append((f"`{name}`", kind, spec.doc))
    return (f"Protocol version: **{PROTOCOL_VERSION[0]}.{PROTOCOL_VERSION[1]}**.\n\n"
            + _table(("key", "type", "meaning"), rows))


def render_summary() -> str:
    rows = []
    for spec in MESSAGES.values():
        reply = f"`{spec.reply}` or `error`" if spec.direction == "request" and spec.reply else (
            "none (`error` on failure)" if spec.direction == "request" else "")
        rows.append((f"[`{spec.name}`](#{spec.name})", spec.direction, _job_text(spec),
                     reply, spec.payloads_doc, spec.doc.split(". ")[0].rstrip(".")))
    return _table(("type", "direction", "job", "answered by", "payload frames", "summary"), rows)


def render_messages() -> str:
    parts = []
    for spec in MESSAGES.values():
        sender = "client → engine" if spec.direction == "request" else "engine → client"
        meta = [f"{spec.direction}, {sender}", f"`job`: {_job_text(spec)}"]
        if spec.direction == "request":
            meta.append(f"answered by `{spec.reply}`" if spec.reply else "no reply on success")
        if spec.payloads_doc != "none":
            meta.append(f"payload frames: {spec.payloads_doc}")
        if spec.since > (1, 0):
            meta.append(f"since {spec.since[0]}.{spec.since[1]}")
        parts.append(f"#### `{spec.name}`\n\n{spec.doc}\n\n*{'; '.join(meta)}.*\n\n"
                     + _fields_table(spec.body.fields) + "\n" + _example(spec.name))
    return "\n".join(parts)


def render_types() -> str:
    seen: dict[str, Struct] = {}
    for spec in MESSAGES.values():
        for struct in spec.body.structs():
            if struct is not spec.body:
                seen.setdefault(struct.name, struct)
    parts = []
    for struct in seen.values():
        text = f"#### {struct.name}\n\n{struct.doc}\n\n" + _fields_table(struct.fields)
        if struct.rules:
            text += "\nRules: " + "; ".join(rule.doc for rule in struct.rules) + ".\n"
        parts.append(text)
    return "\n".join(parts)


def render_errors() -> str:
    rows = [(f"`{cls.code}`", f"`{cls.__name__}`", "yes" if cls.retryable else "", _meaning(cls))
            for cls in ALL_ERRORS]
    return _table(("code", "class (`ned_protocol.errors`)", "retryable", "meaning"), rows)


def _meaning(cls: type) -> str:
    if cls is NedError:  # its docstring describes the base class, not the code
        return "Anything unexpected (a bug, an unforeseen failure); also the base class of every error."
    return (cls.__doc__ or "").strip().splitlines()[0]


def render_limits() -> str:
    rows = [(f"`{name}`", f"{value:,}", LIMIT_DOCS[name]) for name, value in LIMITS.items()]
    return _table(("limit", "value", "bounds"), rows)


RENDERERS: dict[str, Callable[[], str]] = {
    "envelope": render_envelope, "summary": render_summary, "messages": render_messages,
    "types": render_types, "errors": render_errors, "limits": render_limits,
}
"""Block name → renderer; PROTOCOL.md must hold each block exactly once."""


def render_blocks() -> dict[str, str]:
    """Every generated block's text (including the do-not-edit note)."""
    return {name: "\n" + _NOTE + "\n" + render() + "\n" for name, render in RENDERERS.items()}


def update(text: str) -> str:
    """``text`` (PROTOCOL.md) with every generated block replaced by a fresh rendering.

    Raises
    ------
    ValueError
        A block's markers are missing or repeated.
    """
    blocks = render_blocks()
    found = [m.group("name") for m in _BLOCK.finditer(text)]
    for name in blocks:
        if found.count(name) != 1:
            raise ValueError(f"PROTOCOL.md needs exactly one '<!-- spec:begin {name} -->' ... "
                             f"'<!-- spec:end {name} -->' block (found {found.count(name)})")

    def replace(match: re.Match[str]) -> str:
        body = blocks.get(match.group("name"), match.group("body"))
        return match.group(1) + body + match.group(4)

    return _BLOCK.sub(replace, text)


def stale_blocks(text: str) -> list[str]:
    """Names of the blocks whose text in ``text`` differs from a fresh rendering."""
    current = {m.group("name"): m.group("body") for m in _BLOCK.finditer(text)}
    return [name for name, body in render_blocks().items() if current.get(name) != body]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ned_protocol.spec", description=__doc__.split("\n")[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help="rewrite the generated blocks in place")
    mode.add_argument("--check", action="store_true", help="exit 1 when the file's blocks are stale")
    parser.add_argument("path", nargs="?", type=Path, default=DEFAULT_PATH, help="PROTOCOL.md")
    args = parser.parse_args(argv)
    if not (args.write or args.check):
        for name, body in render_blocks().items():
            sys.stdout.write(f"<!-- spec:begin {name} -->\n{body}<!-- spec:end {name} -->\n\n")
        return 0
    try:
        text = args.path.read_text(encoding="utf-8")
    except OSError as error:
        print(f"cannot read {args.path}: {error.strerror}", file=sys.stderr)
        return 2
    if args.check:
        stale = stale_blocks(text)
        if stale:
            print(f"{args.path}: stale blocks {', '.join(stale)}; run `{REGENERATE}`", file=sys.stderr)
            return 1
        return 0
    try:
        new = update(text)
    except ValueError as error:
        print(f"{args.path}: {error}", file=sys.stderr)
        return 2
    if new != text:
        args.path.write_text(new, encoding="utf-8")
        print(f"updated {args.path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
