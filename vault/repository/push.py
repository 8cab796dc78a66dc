"""A push, end to end: source → chunks in packs → sealed manifest → one catalog commit.

The order is what makes a push safe to interrupt: packs are stored and indexed first, the
manifest second, and the version becomes visible only when the catalog commits it. A push
killed at any point leaves no version, and a re-run reuses every chunk that made it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from vault.catalog import FileRow, NewVersion, VersionRow
from vault.catalog.versions import Seal
from vault.chunking import Chunker
from vault.crypto.keyring import new_id
from vault.formats.manifest import Manifest
from vault.keys.subtrees import keyring_for_artifact
from vault.repository import Repository
from vault.repository.chunkstore import ChunkStore, push_file
from vault.repository.manifests import store_manifest
from vault.repository.packs import PackWriter
from vault.repository.source import scan_source
from vault.scan.gate import scan_before_push, unsafe_metadata

Progress = Callable[[int], None]


@dataclass(frozen=True)
class PushRequest:
    """What to push, already validated by the caller."""

    path: Path
    artifact: str
    kind: str
    tags: tuple[str, ...]
    metadata: dict[str, str]
    parents: tuple[VersionRow, ...]
    principal: str
    seal: Seal | None = None  # stores the provenance records (vault.access.provenance_gate)
    allow_unsafe: bool = False  # push content the scan rates dangerous (recorded in the metadata)


@dataclass(frozen=True)
class PushResult:
    """What a push stored."""

    artifact: str
    number: int
    version_id: str
    digest: str
    size: int
    files: int
    new_chunks: int
    reused_chunks: int
    stored_bytes: int
    packs: int
    tags: tuple[str, ...]


def push_version(
    request: PushRequest,
    repo: Repository,
    *,
    progress: Progress | None = None,
) -> PushResult:
    """Store ``request.path`` as the next version of ``request.artifact``."""
    backend, catalog, config = repo.backend, repo.catalog, repo.config
    source = scan_source(request.path)
    # Before any byte is stored: a dangerous pickle is refused (exit 18) unless allowed, then recorded.
    metadata = request.metadata | unsafe_metadata(
        scan_before_push(request.path, allow_unsafe=request.allow_unsafe)
    )
    namespace = request.artifact.split("/", 1)[0]
    # The deepest namespace with a keyring of its own (owner-signed record), else the top level's.
    keyring = keyring_for_artifact(repo.keys, backend, catalog, request.artifact)
    files = []
    writer = PackWriter(backend, catalog, keyring, config.pack_size, uploads=backend.upload_concurrency)
    pool = ThreadPoolExecutor(max_workers=repo.workers, thread_name_prefix="push")
    hasher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sha256")
    store = ChunkStore(catalog, keyring, writer, pool, compression=config.compression == "zstd")
    chunker = Chunker(config.chunker)
    try:
        for src in source.files:
            files.append(push_file(src, chunker, store, keyring, pool, hasher, progress))
        store.drain()
        writer.finish()
    except BaseException:
        # Workers add records to the writer: stop them first, or one could open a new
        # spool file after the abort and leak it.
        pool.shutdown(wait=True, cancel_futures=True)
        writer.abort()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        hasher.shutdown(wait=True, cancel_futures=True)
    version_id = new_id().hex()
    manifest = Manifest(
        vault_id=config.vault_id,
        version_id=version_id,
        artifact=request.artifact,
        kind=request.kind,
        root=source.root,
        created_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        created_by=request.principal,
        files=tuple(files),
        dirs=source.dirs,
        metadata=metadata,
        parents=tuple(f"{p.artifact}@v{p.number}" for p in request.parents),
    )
    store_manifest(backend, keyring, manifest)
    number = catalog.commit_version(
        NewVersion(
            id=version_id,
            artifact=request.artifact,
            namespace=namespace,
            kind=request.kind,
            digest=manifest.digest,
            size=manifest.size,
            root=source.root,
            ring_id=keyring.ring_id.hex(),
            created_by=request.principal,
            files=[FileRow(f.path, f.size, f.mode, f.sha256.hex()) for f in files],
            metadata=metadata,
            parents=[p.id for p in request.parents],
            tags=request.tags,
        ),
        request.seal,
    )
    return PushResult(
        request.artifact,
        number,
        version_id,
        manifest.digest,
        manifest.size,
        len(files),
        store.new_chunks,
        store.reused_chunks,
        writer.stored_bytes,
        writer.packs_written,
        request.tags,
    )
