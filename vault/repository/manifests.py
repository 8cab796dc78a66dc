"""Version manifests in storage: sealed under the namespace keyring, cross-checked on read.

A manifest is the authenticated truth about a version; the catalog row is an index of it
that anyone with database access can edit. :func:`load_manifest` therefore opens the sealed
object and refuses it unless it names the same vault, version, artifact and digest as the
catalog row that led to it.
"""

from __future__ import annotations

from vault import layout
from vault.catalog import VersionRow
from vault.crypto.keyring import Keyring
from vault.errors import IntegrityError, NotFoundError
from vault.formats import manifest as manifest_format
from vault.formats import sealed
from vault.formats.manifest import Manifest
from vault.storage import Backend

MAX_MANIFEST_OBJECT = sealed.HEADER_SIZE + sealed.MANIFEST.max_plaintext + 16


def store_manifest(backend: Backend, keyring: Keyring, manifest: Manifest) -> None:
    """Seal ``manifest`` under the keyring's newest epoch and store it (write-once)."""
    blob = sealed.seal(
        sealed.MANIFEST,
        keyring.dek(keyring.epoch),
        keyring.ring_id,
        keyring.epoch,
        bytes.fromhex(manifest.version_id),
        manifest_format.encode(manifest),
    )
    backend.put(layout.manifest_key(manifest.version_id), blob)


def load_manifest(backend: Backend, keyring: Keyring, vault_id: str, version: VersionRow) -> Manifest:
    """Read, authenticate and cross-check ``version``'s manifest against its catalog row."""
    try:
        blob = backend.get(layout.manifest_key(version.id), max_size=MAX_MANIFEST_OBJECT)
    except NotFoundError as exc:
        raise IntegrityError(f"the manifest of {version.artifact}@v{version.number} is missing") from exc
    header = sealed.parse_unauthenticated_header(sealed.MANIFEST, blob)
    plaintext = sealed.open_object(
        sealed.MANIFEST, blob, keyring.dek(header.epoch), keyring.ring_id, bytes.fromhex(version.id)
    )
    manifest = manifest_format.decode(plaintext)
    if (
        manifest.version_id != version.id
        or manifest.artifact != version.artifact
        or manifest.vault_id != vault_id
        or manifest.digest != version.digest
    ):
        name = f"{version.artifact}@v{version.number}"
        raise IntegrityError(f"the manifest of {name} does not match the catalog")
    return manifest
