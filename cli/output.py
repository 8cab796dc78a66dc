"""Rendering for people (rich) and scripts (--json), and the progress bar.

Start-up matters here (issue 13): every command imports this module, so rich's progress bar is
imported only when a bar is shown, and :func:`print_table` writes a table that goes to a pipe or
a file as plain padded columns — the same text rich renders for ``Table(box=None)``, without
building 20,000 rich rows — and hands it to rich only for a terminal (styles, width) or a row too
wide for the 400 columns rich lays out when stdout is not a terminal.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from rich.cells import cell_len
from rich.console import Console

PIPE_WIDTH = 400  # columns rich lays out when stdout is not a terminal
out = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else PIPE_WIDTH)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def _default(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, bytes):
        return value.hex()
    raise TypeError(f"cannot serialize {type(value).__name__}")


def emit_json(value: Any) -> None:
    """Print ``value`` as JSON on stdout."""
    sys.stdout.write(json.dumps(value, default=_default, indent=2, sort_keys=True) + "\n")


def human_size(n: int | None) -> str:
    """1536 → '1.5 KiB'."""
    if n is None:
        return "-"
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def print_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Print ``rows`` under ``headers`` as columns on stdout; cells are plain text, never markup."""
    widths = [cell_len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], cell_len(cell))
    plain = all(cell.isprintable() for row in rows for cell in row)  # rich handles control codes
    if out.is_terminal or not plain or sum(widths) + 2 * len(widths) > PIPE_WIDTH:
        from rich.table import Table
        from rich.text import Text

        table = Table(*headers, box=None)
        for row in rows:
            table.add_row(*(Text(cell) for cell in row))
        out.print(table)
        return

    def line(cells: Sequence[str]) -> str:
        return "".join(f" {c}{' ' * (w - cell_len(c))} " for c, w in zip(cells, widths, strict=True))

    out.file.write("\n".join([line(headers), *(line(row) for row in rows)]) + "\n")


@contextlib.contextmanager
def progress_bar(label: str, enabled: bool) -> Iterator[Callable[[int], None] | None]:
    """A byte counter with speed on stderr when it is a terminal and not --quiet (totals are not known)."""
    if not enabled or not sys.stderr.isatty():
        yield None
        return
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(binary_units=True),
        TransferSpeedColumn(),
        console=err,
        transient=True,
    ) as bar:
        task = bar.add_task(label, total=None)
        yield lambda n: bar.advance(task, n)
