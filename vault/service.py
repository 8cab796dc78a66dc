"""The Vault facade: every operation a user can ask for, composed from the subsystems.

A :class:`Vault` is built from its parts (backend, catalog, config, a passphrase source)
and owns no global state. :func:`init_vault` and :func:`open_vault` build those parts from
a URL. The CLI calls exactly one method per command.
"""

from __future__ import annotations

import datetime as dt
import getpass
import json
import os
import socket
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import platformdirs
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from vault import keystore
from vault.catalog import ArtifactRow, Catalog, ChunkLocation, NewVersion, VersionRow, open_catalog
from vault.chunking import Chunker
from vault.crypto.kdf import RFC9106_LOW_MEMORY, KdfParams
from vault.crypto.keyring import Keyring, new_id
from vault.errors import (
    AuthenticationError,
    ConfigurationError,
    ConflictError,
    IntegrityError,
    NotFoundError,
    UsageError,
)
from vault.formats import config as config_format
from vault.formats import manifest as manifest_format
from vault.formats import sealed
from vault.formats.config import ChunkerParams, VaultConfig
from vault.formats.manifest import Manifest
from vault.packs import PackWriter
from vault.pull import ChunkFetcher, materialize
from vault.push import ChunkStore, push_file, scan_source
from vault.refs import Ref, check_artifact_name, check_tag, parse_ref
from vault.storage import Backend, StorageOptions, is_remote, open_backend
from vault.storage.base import ObjectExistsError

Passphrase = bytes | str | Callable[[], bytes | str] | None
Progress = Callable[[int], None]
KINDS = ("model", "dataset")
MAX_MANIFEST_OBJECT = sealed.HEADER_SIZE + sealed.MANIFEST.max_plaintext + 16


def default_principal() -> str:
    """user@host of the current process, the creator recorded on versions."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"


def default_workers() -> int:
    """Worker threads for hashing and crypto: one per core, at least two."""
    return max(2, os.cpu_count() or 2)


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


@dataclass(frozen=True)
class VersionDetails:
    """A version with its files, metadata and lineage."""

    version: VersionRow
    files: list[tuple[str, int, int, str]]
    metadata: dict[str, str]
    parents: list[str]


@dataclass
class CheckReport:
    """Problems found by ``check``; empty lists mean the vault is healthy."""

    packs_checked: int = 0
    chunks_checked: int = 0
    versions_checked: int = 0
    problems: list[str] = field(default_factory=list)
    damaged_files: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No problem found."""
        return not self.problems


def manifest_key(version_id: str) -> str:
    """Storage key of a version manifest."""
    return f"manifests/{version_id}"


def _resolve_catalog_url(url: str, backend: Backend, config: VaultConfig, override: str | None) -> str:
    if override:
        return override
    if config.catalog:
        return config.catalog
    if not is_remote(url):
        local = Path(urlparse(url).path if url.startswith("file://") else url).resolve()
        return f"sqlite:///{local}/catalog.sqlite"
    path = Path(platformdirs.user_data_dir("mlvault")) / "catalogs" / f"{config.vault_id}.sqlite"
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


def _passphrase_bytes(source: Passphrase) -> bytes:
    value = source() if callable(source) else source
    if value is None:
        raise AuthenticationError("a passphrase is needed: set MLVAULT_PASSPHRASE or use --passphrase-file")
    return value.encode() if isinstance(value, str) else value


def init_vault(
    url: str,
    *,
    passphrase: Passphrase,
    kdf: KdfParams = RFC9106_LOW_MEMORY,
    catalog_url: str | None = None,
    storage_options: StorageOptions | None = None,
    chunker: ChunkerParams | None = None,
    pack_size: int = 16 * 1024 * 1024,
    principal: str | None = None,
    catalog_pins: Path | None = None,
) -> Vault:
    """Create a new vault at ``url`` and return it open.

    ``catalog_pins`` is the client's file of vault id → catalog URL pins (see open_vault).
    """
    kdf.check()
    secret = _passphrase_bytes(passphrase)
    if not secret:
        raise UsageError("the passphrase must not be empty")
    backend = open_backend(url, storage_options, create=True)
    if backend.exists("config"):
        raise ConflictError(f"a vault already exists at {url}")
    vault_id = new_id()
    # Never write a password into storage; libpq reads PGPASSWORD / ~/.pgpass.
    stored_catalog = shareable_catalog_url(catalog_url) if catalog_url else None
    config = VaultConfig(
        vault_id.hex(), (chunker or ChunkerParams()).check(), pack_size, "zstd", stored_catalog
    )
    config_format.decode(config_format.encode(config))  # refuse what we could not read back
    catalog = open_catalog(_resolve_catalog_url(url, backend, config, catalog_url))
    catalog.set_info("vault_id", config.vault_id)
    owner_key = keystore.create_owner(backend, vault_id, secret, kdf)
    try:
        backend.put("config", config_format.encode(config))
    except ObjectExistsError:
        raise ConflictError(f"a vault already exists at {url}") from None
    if catalog_pins is not None and stored_catalog:
        _check_catalog_pin(catalog_pins, config.vault_id, stored_catalog)
    vault = Vault(backend, catalog, config, passphrase, principal=principal)
    vault._owner_key = owner_key
    return vault


def open_vault(
    url: str,
    *,
    passphrase: Passphrase = None,
    catalog_url: str | None = None,
    storage_options: StorageOptions | None = None,
    principal: str | None = None,
    workers: int | None = None,
    catalog_pins: Path | None = None,
) -> Vault:
    """Open the existing vault at ``url``. The passphrase is asked for only when needed.

    The storage ``config`` names the team catalog, but storage is not trusted to choose
    where metadata goes: with ``catalog_pins`` (a client-side JSON file) the first catalog
    URL seen for a vault id is pinned and a later different one is refused, and an empty
    catalog is never adopted for a vault whose storage already holds versions.
    """
    backend = open_backend(url, storage_options)
    try:
        raw = backend.get("config", max_size=config_format.MAX_SIZE)
    except IntegrityError:
        raise ConfigurationError(f"the object at {url}/config is not an mlvault config (too large)") from None
    except NotFoundError:
        raise NotFoundError(f"no vault at {url} (run `mlvault init {url}` to create one)") from None
    config = config_format.decode(raw)
    if catalog_url is None and config.catalog and catalog_pins is not None:
        _check_catalog_pin(catalog_pins, config.vault_id, config.catalog)
    resolved = _resolve_catalog_url(url, backend, config, catalog_url)
    catalog = open_catalog(resolved)
    stored = catalog.get_info("vault_id")
    if stored is None:
        if next(iter(backend.list("manifests/")), None) is not None:
            catalog.close()
            raise ConfigurationError(
                f"the catalog {shareable_catalog_url(resolved)} is empty but the vault at {url} already "
                "holds versions; pass the vault's own catalog with --catalog"
            )
        catalog.set_info("vault_id", config.vault_id)
    elif stored != config.vault_id:
        catalog.close()
        raise ConfigurationError(f"the catalog belongs to vault {stored}, not to {config.vault_id} at {url}")
    return Vault(backend, catalog, config, passphrase, principal=principal, workers=workers)


def shareable_catalog_url(url: str) -> str:
    """``url`` without any password (in the authority or as a query parameter)."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise UsageError(f"invalid catalog URL {url!r}") from exc
    query = {k: v for k, v in parsed.query.items() if k not in ("password", "passfile", "sslpassword")}
    return parsed.set(query=query)._replace(password=None).render_as_string(hide_password=False)


def _check_catalog_pin(pins_file: Path, vault_id: str, catalog: str) -> None:
    """Pin ``catalog`` for ``vault_id`` on first use; refuse a different one later."""
    try:
        pins = json.loads(pins_file.read_text()) if pins_file.exists() else {}
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"cannot read catalog pins {pins_file}: {exc}") from exc
    if not isinstance(pins, dict):
        raise ConfigurationError(f"catalog pins {pins_file} are malformed; remove the file to re-pin")
    pinned = pins.get(vault_id)
    if pinned is None:
        pins[vault_id] = catalog
        pins_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = pins_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(pins, indent=1, sort_keys=True) + "\n")
        os.replace(tmp, pins_file)
    elif pinned != catalog:
        raise ConfigurationError(
            f"the vault config now names catalog {catalog!r}, but this client pinned {pinned!r}; "
            f"if the catalog really moved, pass --catalog or edit {pins_file}"
        )


class Vault:
    """An open vault."""

    def __init__(
        self,
        backend: Backend,
        catalog: Catalog,
        config: VaultConfig,
        passphrase: Passphrase = None,
        *,
        principal: str | None = None,
        workers: int | None = None,
    ) -> None:
        self.backend = backend
        self.catalog = catalog
        self.config = config
        self.principal = principal or default_principal()
        self._passphrase = passphrase
        self._owner_key: bytes | None = None
        self._keyrings: dict[str, Keyring] = {}
        self._workers = workers or default_workers()

    def __enter__(self) -> Vault:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the catalog and the backend."""
        self.catalog.close()
        self.backend.close()

    @property
    def vault_id(self) -> bytes:
        """The vault's 16-byte id."""
        return bytes.fromhex(self.config.vault_id)

    # -- keys ---------------------------------------------------------------------------

    def _owner(self) -> bytes:
        if self._owner_key is None:
            self._owner_key = keystore.open_owner(
                self.backend, self.vault_id, _passphrase_bytes(self._passphrase)
            )
        return self._owner_key

    def _keyring(self, ring_id: str) -> Keyring:
        if ring_id not in self._keyrings:
            self._keyrings[ring_id] = keystore.open_keyring(
                self.backend, self.vault_id, bytes.fromhex(ring_id), self._owner()
            )
        return self._keyrings[ring_id]

    def _keyring_for_namespace(self, namespace: str) -> Keyring:
        ring_id = self.catalog.keyring_for(namespace)
        if ring_id is not None:
            return self._keyring(ring_id)
        keyring, slot_key = keystore.create_keyring(self.backend, self.vault_id, self._owner())
        winner = self.catalog.add_keyring(namespace, keyring.ring_id.hex())
        if winner != keyring.ring_id.hex():
            self.backend.delete(slot_key)  # another push created it first; use theirs
            return self._keyring(winner)
        self._keyrings[winner] = keyring
        return keyring

    def unlock(self) -> None:
        """Open the owner key now (fails fast on a wrong passphrase)."""
        self._owner()

    # -- push ---------------------------------------------------------------------------

    def push(
        self,
        path: str | os.PathLike[str],
        artifact: str,
        *,
        kind: str | None = None,
        tags: list[str] | tuple[str, ...] = (),
        metadata: dict[str, str] | None = None,
        parents: list[str] | tuple[str, ...] = (),
        progress: Progress | None = None,
    ) -> PushResult:
        """Store ``path`` as the next version of ``artifact``."""
        check_artifact_name(artifact)
        existing_kind = self.catalog.artifact_kind(artifact)
        kind = kind or existing_kind or "model"
        if kind not in KINDS:
            raise UsageError(f"invalid kind {kind!r}: use model or dataset")
        if existing_kind and existing_kind != kind:
            raise ConflictError(f"{artifact} is a {existing_kind}, not a {kind}; drop --kind or fix it")
        tags = tuple(check_tag(t) for t in tags)
        metadata = dict(metadata or {})
        for key in metadata:
            if not key or len(key) > 255:
                raise UsageError(f"invalid metadata key {key!r}")
        parent_rows = [self.resolve(p) for p in parents]
        source = scan_source(Path(path))
        namespace = artifact.split("/", 1)[0]
        keyring = self._keyring_for_namespace(namespace)
        files = []
        # Remote stores hide latency behind more concurrent pack uploads.
        uploads = 4 if is_remote(self.backend.url) else 2
        writer = PackWriter(self.backend, self.catalog, keyring, self.config.pack_size, uploads=uploads)
        pool = ThreadPoolExecutor(max_workers=self._workers, thread_name_prefix="push")
        hasher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sha256")
        store = ChunkStore(self.catalog, keyring, writer, pool, compression=self.config.compression == "zstd")
        chunker = Chunker(self.config.chunker)
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
            vault_id=self.config.vault_id,
            version_id=version_id,
            artifact=artifact,
            kind=kind,
            root=source.root,
            created_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            created_by=self.principal,
            files=tuple(files),
            dirs=source.dirs,
            metadata=metadata,
            parents=tuple(f"{p.artifact}@v{p.number}" for p in parent_rows),
        )
        blob = sealed.seal(
            sealed.MANIFEST,
            keyring.dek(keyring.epoch),
            keyring.ring_id,
            keyring.epoch,
            bytes.fromhex(version_id),
            manifest_format.encode(manifest),
        )
        self.backend.put(manifest_key(version_id), blob)
        number = self.catalog.commit_version(
            NewVersion(
                id=version_id,
                artifact=artifact,
                namespace=namespace,
                kind=kind,
                digest=manifest.digest,
                size=manifest.size,
                root=source.root,
                ring_id=keyring.ring_id.hex(),
                created_by=self.principal,
                files=[(f.path, f.size, f.mode, f.sha256.hex()) for f in files],
                metadata=metadata,
                parents=[p.id for p in parent_rows],
                tags=tags,
            )
        )
        return PushResult(
            artifact,
            number,
            version_id,
            manifest.digest,
            manifest.size,
            len(files),
            store.new_chunks,
            store.reused_chunks,
            writer.stored_bytes,
            writer.packs_written,
            tags,
        )

    # -- read side ----------------------------------------------------------------------

    def resolve(self, ref: str | Ref) -> VersionRow:
        """The version a reference names."""
        parsed = parse_ref(ref) if isinstance(ref, str) else ref
        return self.catalog.resolve(
            parsed.artifact, number=parsed.number, tag=parsed.tag, digest_prefix=parsed.digest_prefix
        )

    def load_manifest(self, version: VersionRow) -> Manifest:
        """Read, authenticate and cross-check a version's manifest from storage."""
        keyring = self._keyring(version.ring_id)
        try:
            blob = self.backend.get(manifest_key(version.id), max_size=MAX_MANIFEST_OBJECT)
        except NotFoundError as exc:
            raise IntegrityError(f"the manifest of {version.artifact}@v{version.number} is missing") from exc
        header = sealed.parse_header(sealed.MANIFEST, blob)
        plaintext = sealed.open_object(
            sealed.MANIFEST, blob, keyring.dek(header.epoch), keyring.ring_id, bytes.fromhex(version.id)
        )
        manifest = manifest_format.decode(plaintext)
        if (
            manifest.version_id != version.id
            or manifest.artifact != version.artifact
            or manifest.vault_id != self.config.vault_id
            or manifest.digest != version.digest
        ):
            raise IntegrityError(
                f"the manifest of {version.artifact}@v{version.number} does not match the catalog"
            )
        return manifest

    def pull(
        self,
        ref: str,
        dest: str | os.PathLike[str],
        *,
        progress: Progress | None = None,
        verifier: Callable[[VersionRow, Manifest], object] | None = None,
    ) -> PullResult:
        """Write the version ``ref`` names to ``dest`` (verified, atomic).

        ``verifier`` (e.g. ``SignatureService.pull_verifier()``) sees the version and its authenticated
        manifest before anything is written; it raises to refuse the pull.
        """
        version = self.resolve(ref)
        try:
            manifest = self.load_manifest(version)
        except IntegrityError as exc:
            raise IntegrityError(f"{version.artifact}@v{version.number}: {exc}") from exc
        if verifier is not None:
            verifier(version, manifest)
        keyring = self._keyring(version.ring_id)
        ring_hex = version.ring_id

        def locate(ids: list[bytes]) -> dict[bytes, ChunkLocation]:
            return self.catalog.lookup_chunks(ring_hex, ids)

        with ThreadPoolExecutor(max_workers=self._workers, thread_name_prefix="pull") as pool:
            fetcher = ChunkFetcher(self.backend, keyring, pool)
            target, digests = materialize(manifest, Path(dest), fetcher, locate, progress)
        return PullResult(
            version.artifact,
            version.number,
            version.digest,
            str(target),
            len(manifest.files),
            manifest.size,
            {path: d.hex() for path, d in digests.items()},
        )

    def list_artifacts(self, prefix: str = "") -> list[ArtifactRow]:
        """Artifacts under ``prefix``."""
        return self.catalog.list_artifacts(prefix)

    def log(self, artifact: str) -> list[VersionRow]:
        """Versions of ``artifact``, newest first."""
        return self.catalog.list_versions(check_artifact_name(artifact))

    def show(self, ref: str) -> VersionDetails:
        """A version with files, metadata and lineage (from the catalog; no key needed)."""
        version = self.resolve(ref)
        files, meta, parents = self.catalog.version_details(version.id)
        return VersionDetails(version, files, meta, parents)

    def tag(self, ref: str, tag: str) -> tuple[VersionRow, str | None]:
        """Point ``tag`` at the version ``ref`` names; returns it and the previous version id."""
        version = self.resolve(ref)
        return version, self.catalog.set_tag(version, check_tag(tag), self.principal)

    # -- check --------------------------------------------------------------------------

    def check(self, *, read_data: bool = False, progress: Progress | None = None) -> CheckReport:
        """Verify structure; with ``read_data`` decrypt and verify every chunk and manifest."""
        from vault.check import run_check

        return run_check(self, read_data=read_data, progress=progress)
