"""The values the catalog hands out and takes in: small frozen dataclasses.

Every row read from the database is checked by :mod:`vault.catalog.values` before one
of these is built, so a ``VersionRow`` or ``ChunkLocation`` in hand holds well-formed ids
and in-range numbers (it still says nothing about whether storage agrees).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ChunkLocation:
    """Where the chunk index says a chunk is stored."""

    pack_id: str
    offset: int
    length: int


@dataclass(frozen=True)
class PackChunk:
    """A chunk record the index places in a pack: its id and byte range there."""

    chunk_id: bytes
    offset: int
    length: int


@dataclass(frozen=True)
class PackRow:
    """A sealed pack."""

    id: str
    ring_id: str
    size: int
    chunk_count: int


@dataclass(frozen=True)
class ArtifactRow:
    """An artifact with a summary of its versions."""

    name: str
    kind: str
    latest: int | None
    size: int | None
    tags: dict[str, int]


@dataclass(frozen=True)
class VersionRow:
    """One committed version."""

    id: str
    artifact: str
    kind: str
    number: int
    digest: str
    size: int
    file_count: int
    root: str
    ring_id: str
    created_by: str
    created_at: dt.datetime
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class FileRow:
    """One file of a version as the catalog records it (what ``show`` prints)."""

    path: str
    size: int
    mode: int
    sha256: str  # lower-case hex


@dataclass(frozen=True)
class VersionContents:
    """What a version holds besides its row: files (by path), metadata and parent references."""

    files: list[FileRow]
    metadata: dict[str, str]
    parents: list[str]  # artifact@vN


@dataclass(frozen=True)
class NewVersion:
    """What a push commits."""

    id: str
    artifact: str
    namespace: str
    kind: str
    digest: str
    size: int
    root: str
    ring_id: str
    created_by: str
    files: Sequence[FileRow]
    metadata: dict[str, str] = field(default_factory=dict)
    parents: Sequence[str] = ()
    tags: Sequence[str] = ()
