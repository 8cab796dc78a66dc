"""Typer's value coercion without pydantic for the plain parameter types (issue 13, start-up).

Typer 0.2x coerces every parsed parameter through a pydantic ``TypeAdapter`` it builds on first
use: importing pydantic and building an adapter for each of the ~20 options a command sees cost
about a third of ``mlvault ls``'s start-up. The commands here take only ``str``, ``bool``,
``int``, ``float``, ``Path`` and lists of those, whose coercion is the value itself or a
constructor. :class:`PlainCoercionGroup`, the app's click group, gives every parameter of the
command tree a coercion that does that in plain Python for the values it recognises (a ``str``; an
``int`` or ``float`` written as plain digits, within the option's bounds; a non-empty path) and
hands every other value, and every other annotation, to typer's own adapter, built then — so
anything unusual gets typer's behaviour and typer's error message.

If typer's internals change shape (no ``typer._coercion``, no ``type_descriptor`` on a
parameter), nothing is replaced and typer coerces as it always did.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args, get_origin

from typer.core import TyperGroup

try:
    from typer._coercion import RuntimeParam, build_runtime_param
    from typer._param_types import coerce_cli_path
except ImportError:  # pragma: no cover — another typer: its own coercion everywhere
    RuntimeParam = None  # type: ignore[assignment,misc]

_UNHANDLED = object()
_INT = re.compile(r"-?[0-9]+\Z")
_FLOAT = re.compile(r"-?[0-9]+(\.[0-9]+)?\Z")


def _plain_leaf(annotation: Any, info: Any, value: Any, param: Any, ctx: Any) -> Any:
    """``value`` coerced as typer's adapter would, or ``_UNHANDLED`` when unsure."""
    if not isinstance(value, str):
        return _UNHANDLED
    if annotation is str:
        return value
    if annotation is Path and value and "\0" not in value and not info.path_type:
        return coerce_cli_path(Path(value), info, path_type=Path, param=param, ctx=ctx)
    if annotation in (int, float) and (_INT if annotation is int else _FLOAT).match(value):
        number = annotation(value)
        if info.clamp or (info.min is not None and number < info.min):
            return _UNHANDLED
        if info.max is not None and number > info.max:
            return _UNHANDLED
        return number
    return _UNHANDLED


if RuntimeParam is not None:

    @dataclass(frozen=True)
    class PlainRuntimeParam(RuntimeParam):
        """Plain-Python coercion, typer's adapter for anything else."""

        descriptor: Any

        def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
            annotation: Any = self.annotation
            if get_origin(annotation) is list and isinstance(value, (list, tuple)):
                (item_type,) = get_args(annotation)
                items = [_plain_leaf(item_type, self.parameter_info, v, param, ctx) for v in value]
                if all(item is not _UNHANDLED for item in items):
                    return items
            else:
                result = _plain_leaf(annotation, self.parameter_info, value, param, ctx)
                if result is not _UNHANDLED:
                    return result
            fallback = build_runtime_param(self.descriptor)
            return fallback._coerce_value(value, param=param, ctx=ctx)


def _install(command: Any, ctx: Any) -> None:
    for param in command.get_params(ctx):  # the help option too, made and kept on first ask
        descriptor: Any = getattr(param, "type_descriptor", None)
        info = getattr(descriptor, "parameter_info", None)
        if info is None or getattr(param, "_runtime_param", False) is not None:
            continue
        if descriptor.file_annotation is not None or info.parser is not None:
            continue
        param._runtime_param = PlainRuntimeParam(
            parameter_info=info, annotation=descriptor.annotation, descriptor=descriptor
        )
    for sub in getattr(command, "commands", {}).values():
        _install(sub, ctx)


class PlainCoercionGroup(TyperGroup):
    """The app's group: before the first parse, every parameter of the tree gets plain coercion."""

    _plain_coercion_installed = False

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        """Install plain coercion on the tree once, then parse as typer does."""
        if RuntimeParam is not None and not self._plain_coercion_installed:
            _install(self, ctx)
            self._plain_coercion_installed = True
        return super().parse_args(ctx, args)
