"""A read-only stream that never hands out more than the file holds or a byte budget allows.

Pickle disassembly reads each opcode's argument with ``read(n)`` where ``n`` comes from the file:
a hostile ``BINBYTES8`` of length 2^60 must not make the reader allocate that. :class:`_Window`
ends the stream at the file's end or the budget, whichever comes first; :class:`BoundedReader`
buffers it (disassembly reads one byte per opcode: a buffered C read, not a Python call down to the
file) and clamps every large read to what is left, so a lie about a length turns into a short read
(the disassembler then reports a truncated pickle) and memory stays bounded by the budget.
"""

from __future__ import annotations

import io
from typing import IO

_LARGE = 1 << 16  # reads above this are clamped to what is left before the buffer allocates them


class _Window(io.RawIOBase):
    """``raw`` from its current position to ``size`` (absolute) or ``budget`` bytes, whichever is less."""

    def __init__(self, raw: IO[bytes], size: int, budget: int) -> None:
        super().__init__()
        self._raw = raw
        self._start = raw.tell()
        self.length = max(0, min(size - self._start, budget))

    def readable(self) -> bool:
        """Always true."""
        return True

    def seekable(self) -> bool:
        """Always true (within the window)."""
        return True

    def tell(self) -> int:
        """Position relative to where the window starts."""
        return self._raw.tell() - self._start

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        """Seek inside the window (clamped to it)."""
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.tell(), io.SEEK_END: self.length}[whence]
        target = min(max(0, base + offset), self.length)
        self._raw.seek(self._start + target)
        return target

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        """Fill ``buffer`` with at most what is left of the window."""
        view = memoryview(buffer)[: max(0, min(len(buffer), self.length - self.tell()))]
        n = self._raw.readinto(view)  # type: ignore[attr-defined]  # straight into the buffer: no copy
        return n or 0


class BoundedReader(io.BufferedReader):
    """A buffered reader over a :class:`_Window`; large reads are clamped to what is left."""

    def __init__(self, raw: IO[bytes], size: int, budget: int) -> None:
        self._window = _Window(raw, size, budget)
        super().__init__(self._window, buffer_size=_LARGE)

    def read(self, size: int | None = -1) -> bytes:
        """At most ``size`` bytes, never past the window (and never an allocation past it)."""
        if size is None or size < 0 or size > _LARGE:
            left = max(0, self._window.length - self.tell())
            size = left if size is None or size < 0 else min(size, left)
        return super().read(size)
