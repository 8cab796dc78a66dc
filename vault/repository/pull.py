"""A pull, end to end: authenticated manifest → optional signature verdict → verified tree.

The verifier (e.g. the trust policy's) sees the version and its authenticated manifest
before a byte is written; :func:`vault.repository.materialize.materialize` then writes
everything into a staging directory and renames it into place only when every chunk and
every file's SHA-256 has been verified.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from vault.catalog import ChunkLocation, VersionRow
from vault.errors import IntegrityError
from vault.formats.manifest import Manifest
from vault.repository import Repository
from vault.repository.fetch import ChunkFetcher
from vault.repository.manifests import load_manifest
from vault.repository.materialize import materialize

Progress = Callable[[int], None]
Verifier = Callable[[VersionRow, Manifest], object]


@dataclass(frozen=True)
class PullResult:
    """What a pull wrote."""

    artifact: str
    number: int
    digest: str
    destination: str
    files: int
    size: int
    sha256: dict[str, str] = field(default_factory=dict)


def pull_version(
    version: VersionRow,
    dest: Path,
    repo: Repository,
    *,
    progress: Progress | None = None,
    verifier: Verifier | None = None,
) -> PullResult:
    """Write ``version`` to ``dest``, verified and atomically."""
    keyring = repo.keys.keyring(version.ring_id)
    try:
        manifest = load_manifest(repo.backend, keyring, repo.vault_id, version)
    except IntegrityError as exc:
        raise IntegrityError(f"{version.artifact}@v{version.number}: {exc}") from exc
    if verifier is not None:
        verifier(version, manifest)

    def locate(ids: list[bytes]) -> dict[bytes, ChunkLocation]:
        return repo.catalog.lookup_chunks(version.ring_id, ids)

    with ThreadPoolExecutor(max_workers=repo.workers, thread_name_prefix="pull") as pool:
        fetcher = ChunkFetcher(repo.backend, keyring, pool)
        target, digests = materialize(manifest, dest, fetcher, locate, progress)
    return PullResult(
        version.artifact,
        version.number,
        version.digest,
        str(target),
        len(manifest.files),
        manifest.size,
        {path: d.hex() for path, d in digests.items()},
    )
