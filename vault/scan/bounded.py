"""A read-only stream that never hands out more than the file holds or a byte budget allows.

Pickle disassembly reads each opcode's argument with ``read(n)`` where ``n`` comes from the file:
a hostile ``BINBYTES8`` of length 2^60 must not make the reader allocate that. Every read here is
clamped to what is left of the stream and of the budget, so a lie about a length turns into a short
read (the disassembler then reports a truncated pickle) and memory stays bounded by the budget.
"""

from __future__ import annotations

import io
from typing import IO


class BoundedReader(io.RawIOBase):
    """``raw`` from its current position, at most ``budget`` bytes, reads clamped to what is left."""

    def __init__(self, raw: IO[bytes], size: int, budget: int) -> None:
        super().__init__()
        self._raw = raw
        self._start = raw.tell()
        self._end = self._start + max(0, min(size - self._start, budget))

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
        base = {io.SEEK_SET: self._start, io.SEEK_CUR: self._raw.tell(), io.SEEK_END: self._end}[whence]
        target = min(max(self._start, base + offset), self._end)
        self._raw.seek(target)
        return target - self._start

    def read(self, size: int | None = -1) -> bytes:
        """At most ``size`` bytes, never past the window."""
        left = self._end - self._raw.tell()
        if left <= 0:
            return b""
        n = left if size is None or size < 0 else min(size, left)
        return self._raw.read(n)

    def readline(self, size: int | None = -1) -> bytes:
        """One line, never past the window."""
        left = self._end - self._raw.tell()
        if left <= 0:
            return b""
        n = left if size is None or size < 0 else min(size, left)
        return self._raw.readline(n)

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        """Fill ``buffer`` from :meth:`read`."""
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)
