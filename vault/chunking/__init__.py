"""Content-defined chunking of a byte stream with FastCDC (pyfastcdc).

Reads the file through ``cut_stream`` (bounded buffer, no mmap, so resident memory does
not grow with the file) and hands out private copies of each chunk, because pyfastcdc's
memoryviews are only valid until the next chunk is cut and the chunks go to worker threads.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO

import pyfastcdc

from vault.formats.config import ChunkerParams


class Chunker:
    """A reusable FastCDC cutter for one vault's parameters (not thread-safe)."""

    def __init__(self, params: ChunkerParams) -> None:
        self.params = params.check()
        self._cdc = pyfastcdc.FastCDC(
            params.avg_size,
            min_size=params.min_size,
            max_size=params.max_size,
            normalized_chunking=params.normalization,  # type: ignore[arg-type]
        )

    def chunks(self, stream: BinaryIO) -> Iterator[bytes]:
        """Yield the chunks of ``stream`` as independent ``bytes`` objects."""
        for chunk in self._cdc.cut_stream(stream):
            yield bytes(chunk.data)
