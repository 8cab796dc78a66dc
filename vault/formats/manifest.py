"""Version manifests: what a version contains, sealed and stored at ``manifests/<id>``.

The plaintext is canonical JSON (sorted keys, no whitespace) of::

    {"format": 1, "vault_id": hex, "version_id": hex, "artifact": "ns/name", "kind": "model",
     "root": "file" | "dir", "digest": hex, "created_at": iso8601, "created_by": str,
     "metadata": {str: str}, "parents": [str],
     "entries": [{"path": "a/b.bin", "type": "file", "size": int, "mode": int,
                  "sha256": hex, "chunks": [[chunk id hex, size], ...]},
                 {"path": "a", "type": "dir", "mode": int}]}

It is sealed (kind MANIFEST, object id = version id) with the keyring's DEK, so a manifest
put under another version's name fails to open. Decoding validates everything a hostile
writer could abuse: path shape (relative POSIX, no ``..``, no empty or dot segments, no
NUL or backslash), duplicate paths, sizes that disagree with their chunks, and caps on
counts. The content digest is the OpenSSF Model Signing root digest: SHA-256 over the raw
per-file SHA-256 digests in path order.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from vault.errors import HostileManifestError, IntegrityError
from vault.formats import ALTERED

FORMAT = 1
MAX_ENTRIES = 1_000_000
MAX_PATH = 4096
MAX_CHUNKS_PER_FILE = 1 << 24
_HEX_DIGITS = frozenset("0123456789abcdef")


@dataclass(frozen=True)
class FileEntry:
    """A regular file in a version."""

    path: str
    size: int
    mode: int
    sha256: bytes
    chunks: tuple[tuple[bytes, int], ...]


@dataclass(frozen=True)
class DirEntry:
    """A directory in a version (kept so that empty directories come back)."""

    path: str
    mode: int


@dataclass(frozen=True)
class Manifest:
    """The decoded content of a version."""

    vault_id: str
    version_id: str
    artifact: str
    kind: str
    root: str
    created_at: str
    created_by: str
    files: tuple[FileEntry, ...]
    dirs: tuple[DirEntry, ...] = ()
    metadata: dict[str, str] = field(default_factory=dict)
    parents: tuple[str, ...] = ()

    @property
    def digest(self) -> str:
        """The OMS root digest, hex."""
        return content_digest(self.files)

    @property
    def size(self) -> int:
        """Total bytes of all files."""
        return sum(f.size for f in self.files)


def content_digest(files: tuple[FileEntry, ...] | list[FileEntry]) -> str:
    """SHA-256 over the raw per-file digests, files in OMS order.

    OpenSSF Model Signing lists files sorted by path components (``a/b`` before ``a-b``
    before ``a.b``), so the digest here equals the signed subject digest.
    """
    h = hashlib.sha256()
    for entry in sorted(files, key=lambda f: f.path.split("/")):
        h.update(entry.sha256)
    return h.hexdigest()


def check_path(path: object) -> str:
    """Return ``path`` if it is a safe relative POSIX path, else HostileManifestError."""
    if not isinstance(path, str) or not path or len(path) > MAX_PATH:
        raise HostileManifestError(f"manifest path {path!r} is not a valid relative path")
    parts = path.split("/")
    if (
        path.startswith("/")
        or "\\" in path
        or "\0" in path
        or any("\ud800" <= c <= "\udfff" for c in path)  # lone surrogates cannot name a file
        or any(p in ("", ".", "..") for p in parts)
        or (len(parts[0]) >= 2 and parts[0][1] == ":")
    ):
        raise HostileManifestError(f"manifest path {path!r} would escape the destination; refusing")
    return path


def encode(manifest: Manifest) -> bytes:
    """Canonical JSON plaintext of ``manifest``."""
    entries: list[dict[str, Any]] = [{"path": d.path, "type": "dir", "mode": d.mode} for d in manifest.dirs]
    entries += [
        {
            "path": f.path,
            "type": "file",
            "size": f.size,
            "mode": f.mode,
            "sha256": f.sha256.hex(),
            "chunks": [[cid.hex(), size] for cid, size in f.chunks],
        }
        for f in manifest.files
    ]
    doc = {
        "format": FORMAT,
        "vault_id": manifest.vault_id,
        "version_id": manifest.version_id,
        "artifact": manifest.artifact,
        "kind": manifest.kind,
        "root": manifest.root,
        "digest": manifest.digest,
        "created_at": manifest.created_at,
        "created_by": manifest.created_by,
        "metadata": manifest.metadata,
        "parents": list(manifest.parents),
        "entries": entries,
    }
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _require(cond: bool, what: str) -> None:
    if not cond:
        raise IntegrityError(f"manifest malformed: {what}")


def _str(doc: dict[str, Any], key: str) -> str:
    value = doc.get(key)
    _require(isinstance(value, str), f"{key} must be a string")
    return str(value)


def _hex32(value: object, what: str) -> bytes:
    # Exactly 64 lower-case hex digits: bytes.fromhex alone would also take spaces and
    # upper case, so one digest could be spelled many ways (or shortened with blanks).
    _require(isinstance(value, str) and len(value) == 64 and set(value) <= _HEX_DIGITS, what)
    return bytes.fromhex(str(value))


def _int(value: object, what: str, upper: int) -> int:
    _require(isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= upper, what)
    assert isinstance(value, int)
    return value


def decode(plaintext: bytes) -> Manifest:
    """Parse and validate manifest plaintext."""
    try:
        doc = json.loads(plaintext)
    except (ValueError, RecursionError) as exc:  # RecursionError: hostile nesting depth
        raise IntegrityError("manifest malformed: not JSON") from exc
    _require(isinstance(doc, dict), "not an object")
    if type(doc.get("format")) is not int or doc.get("format") != FORMAT:  # true == 1.0 == 1 in Python
        raise IntegrityError(
            f"manifest format {doc.get('format')!r} is not one this vault's format writes{ALTERED}"
        )
    raw_entries = doc.get("entries")
    _require(isinstance(raw_entries, list) and len(raw_entries) <= MAX_ENTRIES, "entries")
    files: list[FileEntry] = []
    dirs: list[DirEntry] = []
    seen: set[str] = set()
    for raw in raw_entries:
        _require(isinstance(raw, dict), "entry")
        path = check_path(raw.get("path"))
        _require(path not in seen, f"duplicate path {path!r}")
        seen.add(path)
        mode = _int(raw.get("mode"), "mode", 0o7777)
        if raw.get("type") == "dir":
            dirs.append(DirEntry(path, mode))
            continue
        _require(raw.get("type") == "file", "entry type")
        size = _int(raw.get("size"), "size", 1 << 62)
        sha = _hex32(raw.get("sha256"), "sha256")
        chunks_raw = raw.get("chunks")
        _require(isinstance(chunks_raw, list) and len(chunks_raw) <= MAX_CHUNKS_PER_FILE, "chunks")
        chunks: list[tuple[bytes, int]] = []
        for item in chunks_raw:
            _require(isinstance(item, list) and len(item) == 2, "chunk")
            chunks.append((_hex32(item[0], "chunk id"), _int(item[1], "chunk size", 1 << 26)))
        _require(sum(s for _, s in chunks) == size, f"chunk sizes of {path!r} do not add up")
        files.append(FileEntry(path, size, mode, sha, tuple(chunks)))
    # A file may not sit below another file ("a" file and "a/b"): that is a path-shape attack.
    file_paths = {f.path for f in files}
    for path in seen:
        parent = path.rsplit("/", 1)[0] if "/" in path else None
        while parent:
            if parent in file_paths:
                raise HostileManifestError(f"manifest path {path!r} lies below file {parent!r}; refusing")
            parent = parent.rsplit("/", 1)[0] if "/" in parent else None
    metadata = doc.get("metadata")
    _require(isinstance(metadata, dict) and all(isinstance(v, str) for v in metadata.values()), "metadata")
    parents = doc.get("parents")
    _require(isinstance(parents, list) and all(isinstance(p, str) for p in parents), "parents")
    root = _str(doc, "root")
    _require(root in ("file", "dir"), "root")
    _require(root == "dir" or (len(files) == 1 and not dirs), "a single-file version holds one file")
    if root == "file" and "/" in files[0].path:
        # A single file lands at the user's destination or directly inside it: one name only.
        raise HostileManifestError(f"single-file manifest path {files[0].path!r} has directories; refusing")
    manifest = Manifest(
        vault_id=_str(doc, "vault_id"),
        version_id=_str(doc, "version_id"),
        artifact=_str(doc, "artifact"),
        kind=_str(doc, "kind"),
        root=root,
        created_at=_str(doc, "created_at"),
        created_by=_str(doc, "created_by"),
        files=tuple(files),
        dirs=tuple(dirs),
        metadata=dict(metadata),
        parents=tuple(parents),
    )
    _require(manifest.digest == doc.get("digest"), "digest does not match the files")
    return manifest
