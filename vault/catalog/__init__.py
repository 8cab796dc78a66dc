"""The catalog: versions, tags, metadata, lineage and the chunk index, on SQLAlchemy.

SQLite by default (a file inside the vault), PostgreSQL for teams. All writes are short
transactions with no I/O to storage inside them. Version numbers are allocated in the
same transaction that inserts the version: the artifact row is locked (``FOR UPDATE`` on
PostgreSQL; SQLite transactions start ``IMMEDIATE`` and so are serialized), the next
number is max + 1, and a unique constraint on (artifact, number) backs it up with a retry.

Nothing read from the database is trusted: values are checked at this boundary
(:mod:`vault.catalog.values`), and a corrupt database is a ``CatalogDamagedError``
(:mod:`vault.catalog.engine`).
"""

from vault.catalog.catalog import Catalog, open_catalog
from vault.catalog.rows import (
    ArtifactRow,
    ChunkLocation,
    FileRow,
    NewVersion,
    PackChunk,
    PackRow,
    VersionContents,
    VersionRow,
)

__all__ = [
    "ArtifactRow",
    "Catalog",
    "ChunkLocation",
    "FileRow",
    "NewVersion",
    "PackChunk",
    "PackRow",
    "VersionContents",
    "VersionRow",
    "open_catalog",
]
