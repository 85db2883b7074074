"""Per-class wire encoders and decoders, generated once from dataclass fields.

Theory of operation. Every message passes through the codec twice, so a message must cost one
Python call and no per-field dispatch. For each class the codec carries, this module writes
the source of an encoder and a decoder from the dataclass's fields — the way
:mod:`dataclasses` writes ``__init__`` — and compiles it once, at import.

A message travels as the array ``[protocol, group_id, tag, field, field, ...]``; its generated
encoder takes the :class:`~kvorum.core.shape.Envelope` and its body and returns that tuple
(after checking that the envelope's protocol, sender and receiver agree with the body), and
its decoder takes the unpacked array and returns the whole ``Envelope``. A record (a dataclass
nested in a message: a Raft ``Entry``, a NODE ``GroupBeat``) is the array of its fields,
without protocol or tag; a tuple of records is an array of such arrays, decoded in one loop.
Field kinds: ``int``, ``bool``, ``bytes``, ``int | None``, an :class:`~enum.IntEnum` (its
integer), ``frozenset[int]`` (a sorted array), ``tuple[bytes, ...]``, a record and a tuple of
records. Anything else fails at import with :class:`TypeError`, never on the wire.

Decoding checks every field's type with ``__class__`` identity tests (so ``True`` is not an
``int`` and a float is nothing) and then writes the frozen object's slots directly, through
the slots' descriptors — what the generated ``__init__`` does through ``object.__setattr__``,
minus most of its overhead. A class with a ``__post_init__`` (or without slots) is built
through its constructor instead, so its own checks still run. Anything malformed raises a
plain exception here — :class:`ValueError` for a field of the wrong type, whatever Python
raises for a wrong arity or an unknown enum value — and :mod:`kvorum.runtime.codec` reports
every exception out of a decoder as its ``DecodeError``.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Iterable, Sequence
from enum import IntEnum
from operator import attrgetter
from typing import Any, cast

from kvorum.core.shape import Envelope

FieldPlan = tuple[str, Any]
"""How one field travels: a kind name and its argument (an enum or a record class)."""

SCALAR_KINDS = frozenset({"int", "bool", "bytes", "optional_int", "enum"})

EncodeEnvelope = Callable[[Envelope, Any], tuple[Any, ...]]
"""``encode(envelope, body)``: the tuple to pack; raises ``bad_envelope(...)`` on a mismatch."""
DecodeEnvelope = Callable[[tuple[Any, ...]], Envelope]
EncodeRecord = Callable[[Any], tuple[Any, ...]]
DecodeRecord = Callable[[tuple[Any, ...]], Any]


def _is_record(hint: object) -> bool:
    return isinstance(hint, type) and dataclasses.is_dataclass(hint)


def plan_field(owner: type, name: str, hint: object) -> FieldPlan:
    """Classify one field's type; anything unforeseen fails here, at import."""
    if hint is bool:
        return ("bool", None)
    if hint is int:
        return ("int", None)
    if hint is bytes:
        return ("bytes", None)
    if isinstance(hint, type) and issubclass(hint, IntEnum):
        return ("enum", hint)
    if _is_record(hint):
        return ("record", hint)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType) and set(args) == {int, type(None)}:
        return ("optional_int", None)
    if origin is frozenset and args == (int,):
        return ("int_set", None)
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        if args[0] is bytes:
            return ("bytes_tuple", None)
        if _is_record(args[0]):
            return ("records", args[0])
    raise TypeError(f"the wire codec cannot carry {owner.__name__}.{name}: {hint!r}")


def plan_fields(cls: type) -> list[tuple[str, FieldPlan]]:
    """``(field name, plan)`` for every field of the dataclass ``cls``, in field order."""
    if not _is_record(cls):
        raise TypeError(f"the wire codec carries dataclasses, not {cls!r}")
    hints = typing.get_type_hints(cls)  # resolved in the class's own module
    return [(f.name, plan_field(cls, f.name, hints[f.name])) for f in dataclasses.fields(cls)]


def nested_records(classes: Iterable[type]) -> list[type]:
    """Every record class reachable from ``classes``' fields, innermost first."""
    found: list[type] = []

    def visit(cls: type) -> None:
        for _, (kind, arg) in plan_fields(cls):
            if kind in ("record", "records") and arg not in found:
                visit(arg)
                found.append(arg)

    for cls in classes:
        visit(cls)
    return found


def describe(cls: type) -> str:
    """The wire layout of ``cls`` as text (for the schema fingerprint): its name, and each
    field's name and kind, with an enum's members and a record's name."""
    parts = []
    for name, (kind, arg) in plan_fields(cls):
        if kind == "enum":
            members = ",".join(f"{m.name}={int(m)}" for m in arg)
            parts.append(f"{name}:enum[{arg.__name__}:{members}]")
        elif kind in ("record", "records"):
            parts.append(f"{name}:{kind}[{arg.__name__}]")
        else:
            parts.append(f"{name}:{kind}")
    return f"{cls.__name__}({','.join(parts)})"


def _bytes_tuple(raw: object) -> tuple[bytes, ...]:
    if raw.__class__ is not tuple or any(x.__class__ is not bytes for x in cast(tuple[Any], raw)):
        raise ValueError(f"expected an array of byte strings, got {raw!r:.80}")
    return cast(tuple[bytes, ...], raw)


def _int_set(raw: object) -> frozenset[int]:
    if raw.__class__ is not tuple or any(x.__class__ is not int for x in cast(tuple[Any], raw)):
        raise ValueError(f"expected an array of node ids, got {raw!r:.80}")
    return frozenset(cast(tuple[int, ...], raw))


def _bad_fields(cls: type, raw: tuple[Any, ...]) -> ValueError:
    got = ", ".join(type(v).__name__ for v in raw)
    return ValueError(f"{cls.__name__}: wrong field types on the wire ({got})")


def _direct(cls: type) -> bool:
    """Whether objects of ``cls`` may be built by writing their slots (no checks skipped)."""
    return _is_record(cls) and "__post_init__" not in vars(cls) and "__slots__" in vars(cls)


class CodeWriter:
    """Generates encoders and decoders into one namespace, where they find each other by name
    when they run (so the order of generation does not matter, and a faster replacement of a
    record's encoder is seen by every message that nests it)."""

    def __init__(self, bad_envelope: Callable[[Envelope, Any], Exception]) -> None:
        self.namespace: dict[str, Any] = {
            "_new": object.__new__,
            "_int_set": _int_set,
            "_bytes_tuple": _bytes_tuple,
            "_bad_fields": _bad_fields,
            "_bad_envelope": bad_envelope,
            "_Envelope": Envelope,
        }
        self._envelope_direct = _direct(Envelope)
        if self._envelope_direct:
            for name in ("protocol", "group_id", "src", "dst", "body"):
                self.namespace[f"_set_env_{name}"] = getattr(Envelope, name).__set__

    def _fields(self, cls: type) -> tuple[list[str], list[str], list[str], list[str]]:
        """For ``cls``: its encoded items, unpacking targets, type checks and decoded values."""
        name = cls.__name__
        items: list[str] = []
        variables: list[str] = []
        checks: list[str] = []
        values: list[str] = []
        for i, (field_name, (kind, arg)) in enumerate(plan_fields(cls)):
            v = f"v{i}"
            variables.append(v)
            attribute = f"m.{field_name}"
            if kind in ("int", "bool", "bytes"):
                items.append(attribute)
                checks.append(f"{v}.__class__ is not {kind}")
                values.append(v)
            elif kind == "optional_int":
                items.append(attribute)
                checks.append(f"({v} is not None and {v}.__class__ is not int)")
                values.append(v)
            elif kind == "enum":
                self.namespace[f"_members_{name}_{i}"] = {int(member): member for member in arg}
                items.append(attribute)
                checks.append(f"{v}.__class__ is not int")
                values.append(f"_members_{name}_{i}[{v}]")  # KeyError on an unknown value
            elif kind == "int_set":
                items.append(f"sorted({attribute})")
                values.append(f"_int_set({v})")
            elif kind == "bytes_tuple":
                items.append(attribute)
                values.append(f"_bytes_tuple({v})")
            elif kind == "record":
                items.append(f"_enc_{arg.__name__}({attribute})")
                checks.append(f"{v}.__class__ is not tuple")
                values.append(f"_dec_{arg.__name__}({v})")
            else:  # "records"
                items.append(f"list(map(_enc_{arg.__name__}, {attribute}))")
                checks.append(f"{v}.__class__ is not tuple")
                values.append(f"_dec_many_{arg.__name__}({v})")
        return items, variables, checks, values

    def _build(
        self,
        cls: type,
        variables: Sequence[str],
        checks: Sequence[str],
        values: Sequence[str],
        envelope_checks: Sequence[str] = (),
    ) -> list[str]:
        """Statements that check ``v0, v1, ...`` (and ``g``, the group id, when
        ``envelope_checks`` say so) and bind ``o`` to the new ``cls`` object."""
        name = cls.__name__
        known = self.namespace.setdefault(f"_cls_{name}", cls)
        if known is not cls:  # generated functions are named after their class
            raise TypeError(f"two classes named {name} in one protocol: {known!r} and {cls!r}")
        body: list[str] = []
        all_checks = [*envelope_checks, *checks]
        if all_checks:
            got = ", ".join([*(["g"] if envelope_checks else []), *variables])
            body.append(f"if {' or '.join(all_checks)}:")
            body.append(f"    raise _bad_fields(_cls_{name}, ({got},))")
        if _direct(cls):
            body.append(f"o = _new(_cls_{name})")
            for (field_name, _), value in zip(plan_fields(cls), values, strict=True):
                setter = f"_set_{name}_{field_name}"
                self.namespace[setter] = getattr(cls, field_name).__set__
                body.append(f"{setter}(o, {value})")
        else:
            body.append(f"o = _cls_{name}({', '.join(values)})")
        return body

    def _compile(self, lines: list[str], *names: str) -> tuple[Any, ...]:
        exec("\n".join(lines), self.namespace)  # source built from dataclass fields
        return tuple(self.namespace[n] for n in names)

    def record(self, cls: type) -> tuple[EncodeRecord, DecodeRecord]:
        """``(encode, decode)`` for a record: the tuple of its fields, and back.

        Also defines ``_dec_many_X(raw)``, which decodes an array of them with the object
        built inline in the loop (an AppendEntries' entries), saving a call per record.
        """
        name = cls.__name__
        items, variables, checks, values = self._fields(cls)
        body = self._build(cls, variables, checks, values)
        lines = [f"def _enc_{name}(m):", f"    return ({', '.join(items)},)", ""]
        lines += [f"def _dec_{name}(t):", f"    {', '.join(variables)}, = t"]
        lines += [f"    {line}" for line in body] + ["    return o", ""]
        lines += [f"def _dec_many_{name}(raw):", "    out = []", "    append = out.append"]
        lines.append(f"    for {', '.join(variables)}, in raw:")
        lines += [f"        {line}" for line in body]
        lines += ["        append(o)", "    return tuple(out)"]
        encode, decode = self._compile(lines, f"_enc_{name}", f"_dec_{name}")
        plans = plan_fields(cls)
        if len(plans) > 1 and all(kind in SCALAR_KINDS for _, (kind, _) in plans):
            # A record of scalars is encoded faster by attrgetter, which builds the tuple in C.
            encode = attrgetter(*(field_name for field_name, _ in plans))
            self.namespace[f"_enc_{name}"] = encode
        return encode, decode

    def message(self, cls: type, protocol: int, tag: int) -> tuple[EncodeEnvelope, DecodeEnvelope]:
        """``(encode, decode)`` for a message class of ``protocol`` with wire number ``tag``.

        The class's first two fields must be ``src`` and ``dst`` (node ids): the envelope's
        sender and receiver are the body's, and the encoder refuses an envelope that says
        otherwise, since the receiving transport would refuse the frame and drop the whole
        connection.
        """
        name = cls.__name__
        plans = plan_fields(cls)
        if [(n, kind) for n, (kind, _) in plans[:2]] != [("src", "int"), ("dst", "int")]:
            raise TypeError(f"{name}: a message's first fields must be src and dst node ids")
        self.namespace[f"_protocol_{name}"] = protocol
        items, variables, checks, values = self._fields(cls)
        body = self._build(cls, variables, checks, values, ["g.__class__ is not int"])
        p = int(protocol)
        lines = [
            f"def _enc_{name}(e, m):",
            f"    if e.protocol != {p} or e.src != m.src or e.dst != m.dst "
            "or e.group_id.__class__ is not int:",
            f"        raise _bad_envelope(e, {p})",
            f"    return ({p}, e.group_id, {tag}, {', '.join(items)},)",
            "",
            f"def _dec_{name}(t):",
            f"    _p, g, _t, {', '.join(variables)}, = t",
        ]
        lines += [f"    {line}" for line in body]
        if self._envelope_direct:
            lines += [
                "    e = _new(_Envelope)",
                f"    _set_env_protocol(e, _protocol_{name})",
                "    _set_env_group_id(e, g)",
                "    _set_env_src(e, v0)",
                "    _set_env_dst(e, v1)",
                "    _set_env_body(e, o)",
                "    return e",
            ]
        else:
            lines.append(f"    return _Envelope(_protocol_{name}, g, v0, v1, o)")
        encode, decode = self._compile(lines, f"_enc_{name}", f"_dec_{name}")
        return cast(EncodeEnvelope, encode), cast(DecodeEnvelope, decode)
