"""The small, declarative type vocabulary the schema is written in: ``Str``, ``Int``, ``Float``, ``Bool``,
``List``, ``Dict``, ``Option`` and named ``Struct``\\ s of ``Field``\\ s with cross-field ``Rule``\\ s.

Each type checks a decoded msgpack value (raising ``InvalidMessageError`` that names the field path,
e.g. ``spec.keys[2].weights``), describes itself for the spec tables, and fills documented defaults.
Checking only ever follows the schema, so its depth and cost are bounded by the schema, not the input.

Imports only the standard library and ``ned_protocol.errors``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from ned_protocol.errors import InvalidMessageError

Version = tuple[int, int]
Problem = Optional[tuple[str, str]]
"""What a ``Rule`` finds: ``(field name, what is wrong)``, or None when the map is fine."""


def kind(value: Any) -> str:
    """The wire name of a decoded value's type, for error messages."""
    if value is None:
        return "nil"
    for cls, name in ((bool, "bool"), (int, "int"), (float, "float"), (str, "str"),
                      ((bytes, bytearray), "bin"), (list, "array"), (dict, "map")):
        if isinstance(value, cls):
            return name
    return type(value).__name__


def join(path: str, name: str) -> str:
    """``path.name`` (or ``name`` at the top)."""
    return f"{path}.{name}" if path else name


def short(value: Any, limit: int = 40) -> str:
    """A value's repr, cut for an error message (a hostile value must not make a huge message)."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def bad(path: str, problem: str) -> InvalidMessageError:
    """The error for a value at ``path``; the caller raises it."""
    return InvalidMessageError(f"{path or 'message'} {problem}", field=path or None)


class Type:
    """A wire type: checks a decoded value, describes itself, fills defaults."""

    def check(self, value: Any, path: str, version: Version) -> None:
        raise InvalidMessageError(f"{type(self).__name__} cannot check values", field=path)

    def describe(self) -> str:
        return type(self).__name__.lower()

    def structs(self) -> Iterator[Struct]:
        """The named structs this type contains (for the spec's type tables)."""
        return iter(())

    def with_defaults(self, value: Any) -> Any:
        return value


class Str(Type):
    """A UTF-8 string of ``min_len..max_len`` characters, optionally one of ``choices`` or matching a
    ``pattern``; ``path=True`` marks a file path (no NUL characters)."""

    def __init__(self, max_len: int, *, min_len: int = 0, choices: tuple[str, ...] | None = None,
                 pattern: str | None = None, path: bool = False) -> None:
        self.max_len, self.min_len, self.choices, self.path = max_len, min_len, choices, path
        self.pattern = pattern
        self._regex = re.compile(pattern) if pattern else None

    def check(self, value: Any, path: str, version: Version) -> None:
        if not isinstance(value, str):
            raise bad(path, f"must be a string, got {kind(value)}")
        if self.choices is not None:
            if value not in self.choices:
                raise bad(path, f"must be one of {', '.join(self.choices)}; got {short(value)}")
            return
        if not self.min_len <= len(value) <= self.max_len:
            raise bad(path, f"must be {self.min_len}..{self.max_len} characters long, got {len(value)}")
        if self._regex is not None and not self._regex.fullmatch(value):
            raise bad(path, f"must match {self.pattern}; got {short(value)}")
        if self.path and "\x00" in value:
            raise bad(path, "must not contain a NUL character")

    def describe(self) -> str:
        if self.choices is not None:
            return "one of " + ", ".join(f"`{c}`" for c in self.choices)
        text = "path" if self.path else "str"
        text += f" {self.min_len}..{self.max_len} chars" if self.min_len else f" ≤ {self.max_len} chars"
        return text + (f" matching `{self.pattern}`" if self.pattern else "")


class Int(Type):
    """An integer in ``lo..hi`` (a bool is not an integer here)."""

    def __init__(self, lo: int, hi: int) -> None:
        self.lo, self.hi = lo, hi

    def check(self, value: Any, path: str, version: Version) -> None:
        if not isinstance(value, int) or isinstance(value, bool):
            raise bad(path, f"must be an integer, got {kind(value)}")
        if not self.lo <= value <= self.hi:
            raise bad(path, f"must be in {self.lo}..{self.hi}, got {short(value)}")

    def describe(self) -> str:
        return f"int {self.lo}..{self.hi}"


class Float(Type):
    """A finite number in ``lo..hi``; integers are accepted (msgpack packs 1.0 as a float, 1 as an int)."""

    def __init__(self, lo: float, hi: float) -> None:
        self.lo, self.hi = lo, hi

    def check(self, value: Any, path: str, version: Version) -> None:
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise bad(path, f"must be a number, got {kind(value)}")
        if isinstance(value, float) and not math.isfinite(value):
            raise bad(path, f"must be finite, got {value}")
        if not self.lo <= value <= self.hi:
            raise bad(path, f"must be in {self.lo:g}..{self.hi:g}, got {short(value)}")

    def describe(self) -> str:
        return f"float {self.lo:g}..{self.hi:g}"


class Bool(Type):
    """``true`` or ``false``."""

    def check(self, value: Any, path: str, version: Version) -> None:
        if not isinstance(value, bool):
            raise bad(path, f"must be true or false, got {kind(value)}")

    def describe(self) -> str:
        return "bool"


class List(Type):
    """An array of ``item`` with ``min_len..max_len`` elements; ``unique`` forbids repeats (hashable
    items only)."""

    def __init__(self, item: Type, *, max_len: int, min_len: int = 0, unique: bool = False) -> None:
        self.item, self.max_len, self.min_len, self.unique = item, max_len, min_len, unique

    def check(self, value: Any, path: str, version: Version) -> None:
        # tuples only come from build() (msgpack packs them as arrays); decoding always gives lists
        if not isinstance(value, (list, tuple)):
            raise bad(path, f"must be an array, got {kind(value)}")
        if not self.min_len <= len(value) <= self.max_len:
            size = f"{self.min_len}" if self.min_len == self.max_len else f"{self.min_len}..{self.max_len}"
            raise bad(path, f"must have {size} elements, got {len(value)}")
        for index, item in enumerate(value):
            self.item.check(item, f"{path}[{index}]", version)
        if self.unique and len(set(value)) != len(value):
            seen: set[Any] = set()
            repeat = next(v for v in value if v in seen or seen.add(v))
            raise bad(path, f"must not repeat values, {short(repeat)} appears twice")

    def describe(self) -> str:
        inner = self.item.describe()
        if self.min_len == self.max_len:
            return f"array of {self.max_len} × {inner}"
        size = f"{self.min_len}..{self.max_len}" if self.min_len else f"≤ {self.max_len}"
        return f"array ({size}) of {inner}" + (", no repeats" if self.unique else "")

    def structs(self) -> Iterator[Struct]:
        return self.item.structs()

    def with_defaults(self, value: Any) -> Any:
        return [self.item.with_defaults(v) for v in value] if isinstance(value, (list, tuple)) else value


class Dict(Type):
    """A map with free keys of type ``key`` and values of type ``value``, ``min_len..max_len`` entries."""

    def __init__(self, key: Str, value: Type, *, max_len: int, min_len: int = 0) -> None:
        self.key, self.value, self.max_len, self.min_len = key, value, max_len, min_len

    def check(self, value: Any, path: str, version: Version) -> None:
        if not isinstance(value, dict):
            raise bad(path, f"must be a map, got {kind(value)}")
        if not self.min_len <= len(value) <= self.max_len:
            raise bad(path, f"must have {self.min_len}..{self.max_len} entries, got {len(value)}")
        for key, item in value.items():
            where = join(path, key[:40]) if isinstance(key, str) else path
            self.key.check(key, where, version)
            self.value.check(item, where, version)

    def describe(self) -> str:
        size = f"{self.min_len}..{self.max_len}" if self.min_len else f"≤ {self.max_len}"
        return f"map ({size}) of {self.key.describe()} → {self.value.describe()}"

    def structs(self) -> Iterator[Struct]:
        return self.value.structs()

    def with_defaults(self, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        return {k: self.value.with_defaults(v) for k, v in value.items()}


class Option(Type):
    """A backend option value: nil, bool, int, float, str, or an array of those (one level)."""

    def __init__(self, *, max_str: int, max_len: int) -> None:
        self.max_str, self.max_len = max_str, max_len

    def _scalar(self, value: Any, path: str) -> None:
        if value is None or isinstance(value, (bool, int)):
            if isinstance(value, int) and not -2**63 <= value < 2**64:
                raise bad(path, "is out of the 64-bit integer range")
            return
        if isinstance(value, float):
            if not math.isfinite(value):
                raise bad(path, f"must be finite, got {value}")
            return
        if isinstance(value, str):
            if len(value) > self.max_str:
                raise bad(path, f"must be ≤ {self.max_str} characters, got {len(value)}")
            return
        raise bad(path, f"must be nil, bool, int, float or str, got {kind(value)}")

    def check(self, value: Any, path: str, version: Version) -> None:
        if isinstance(value, list):
            if len(value) > self.max_len:
                raise bad(path, f"must have ≤ {self.max_len} elements, got {len(value)}")
            for index, item in enumerate(value):
                self._scalar(item, f"{path}[{index}]")
        else:
            self._scalar(value, path)

    def describe(self) -> str:
        return f"nil, bool, int, float, str ≤ {self.max_str} chars, or an array (≤ {self.max_len}) of them"


@dataclass(frozen=True)
class Field:
    """One field of a struct or message body.

    ``default`` is what the receiver assumes when the field is absent (documentation and
    ``with_defaults``); ``nullable`` allows an explicit nil; ``since`` is the protocol version that
    added the field (a message that says an older version must not carry it).
    """

    type: Type
    doc: str
    required: bool = False
    default: Any = None
    nullable: bool = False
    since: Version = (1, 0)


@dataclass(frozen=True)
class Rule:
    """A cross-field rule of a struct: ``doc`` for the spec, ``find`` returns the problem or None.

    ``pair`` is ``(name, other)`` for an ``only_with`` rule, so defaults never add ``name`` alone.
    """

    doc: str
    find: Callable[[dict], Problem]
    pair: tuple[str, str] | None = None


@dataclass(frozen=True)
class Struct(Type):
    """A map with a fixed set of named fields; unknown fields are errors."""

    name: str
    doc: str
    fields: dict[str, Field]
    rules: tuple[Rule, ...] = field(default=())

    def check(self, value: Any, path: str, version: Version) -> None:
        if not isinstance(value, dict):
            raise bad(path, f"must be a map, got {kind(value)}")
        for key in value:
            if key not in self.fields:
                where = join(path, key) if isinstance(key, str) else path
                known = ", ".join(self.fields) or "none"
                raise bad(where, f"is not a field of {self.name} "
                                 f"(unknown field {short(key)}; known: {known})")
        for name, spec in self.fields.items():
            where = join(path, name)
            if name not in value:
                if spec.required:
                    raise bad(where, "is required")
                continue
            if spec.since > tuple(version):
                raise bad(where, f"is new in protocol {spec.since[0]}.{spec.since[1]}; "
                                 f"the message says {version[0]}.{version[1]}")
            item = value[name]
            if item is None:
                if not spec.nullable:
                    raise bad(where, "must not be nil")
                continue
            spec.type.check(item, where, version)
        for rule in self.rules:
            problem = rule.find(value)
            if problem is not None:
                raise bad(join(path, problem[0]), problem[1])

    def describe(self) -> str:
        return f"[{self.name}](#{self.name.lower()})"

    def structs(self) -> Iterator[Struct]:
        yield self
        for spec in self.fields.values():
            yield from spec.type.structs()

    def with_defaults(self, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        lonely = {r.pair[0] for r in self.rules if r.pair is not None and value.get(r.pair[1]) is None}
        out = {}
        for name, spec in self.fields.items():
            if name in value:
                out[name] = spec.type.with_defaults(value[name])
            elif spec.default is not None and name not in lonely:
                out[name] = spec.type.with_defaults(spec.default)
        return out


# -- rule helpers --------------------------------------------------------------------------------------
def exactly_one(*names: str) -> Rule:
    """Exactly one of ``names`` is present (and not nil)."""

    def find(value: dict) -> Problem:
        present = [n for n in names if value.get(n) is not None]
        if len(present) != 1:
            got = ", ".join(present) or "none"
            return names[0], f"needs exactly one of {', '.join(names)} (got {got})"
        return None

    return Rule(f"exactly one of {', '.join(f'`{n}`' for n in names)}", find)


def at_most_one(*names: str) -> Rule:
    """At most one of ``names`` is present (and not nil)."""

    def find(value: dict) -> Problem:
        present = [n for n in names if value.get(n) is not None]
        if len(present) > 1:
            return present[1], f"cannot be given together with {present[0]}"
        return None

    return Rule(f"at most one of {', '.join(f'`{n}`' for n in names)}", find)


def at_least_one(*names: str) -> Rule:
    """At least one of ``names`` is present and true (a non-empty string counts as true)."""

    def find(value: dict) -> Problem:
        if not any(value.get(n) for n in names):
            return names[0], f"needs at least one of {', '.join(names)}"
        return None

    return Rule(f"at least one of {', '.join(f'`{n}`' for n in names)}", find)


def only_with(name: str, other: str) -> Rule:
    """``name`` may be given only when ``other`` is."""

    def find(value: dict) -> Problem:
        if value.get(name) is not None and value.get(other) is None:
            return name, f"is only allowed together with {other}"
        return None

    return Rule(f"`{name}` only together with `{other}`", find, (name, other))


def ordered(name: str, pairs: tuple[tuple[int, int], ...], text: str) -> Rule:
    """Array ``name``'s element ``a`` must be ≤ element ``b`` for each ``(a, b)`` of ``pairs``."""

    def find(value: dict) -> Problem:
        items = value.get(name)
        if isinstance(items, (list, tuple)) and any(items[a] > items[b] for a, b in pairs):
            return name, f"{text}, got {short(items)}"
        return None

    return Rule(f"`{name}`: {text}", find)
