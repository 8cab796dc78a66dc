"""Version manifests in storage: sealed under the namespace keyring, cross-checked on read.

A manifest is the authenticated truth about a version; the catalog row is an index of it
that anyone with database access can edit. :func:`load_manifest` therefore opens the sealed
object and refuses it unless it names the same vault, version, artifact and digest as the
catalog row that led to it.

**Re-sealed manifests.** ``rekey --reencrypt`` cannot overwrite ``manifests/<id>`` (objects are
write-once), so it writes the manifest again under ``manifests/<id>.e<N>`` sealed with epoch N
(:func:`reseal_manifest`), and readers take the newest copy (:func:`newest_manifest_key`): one
HEAD on a namespace never rekeyed, two after a re-encryption, and one LIST of this version's
copies only for a rekeyed namespace not re-encrypted yet or a reader whose key is behind. A copy
sealed under an epoch newer than the reader's keyring means the reader's key predates a rekey:
that is "no key" (exit 4), not damage. The original stays until garbage collection removes it.
"""

from __future__ import annotations

from vault import layout
from vault.catalog import VersionRow
from vault.crypto.keyring import Keyring
from vault.errors import AuthenticationError, IntegrityError, NotFoundError
from vault.formats import manifest as manifest_format
from vault.formats import sealed
from vault.formats.manifest import Manifest
from vault.storage import Backend, ObjectExistsError

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


def reseal_manifest(backend: Backend, keyring: Keyring, manifest: Manifest) -> bool:
    """Store ``manifest`` again under the keyring's newest epoch; False if that copy already exists."""
    blob = sealed.seal(
        sealed.MANIFEST,
        keyring.dek(keyring.epoch),
        keyring.ring_id,
        keyring.epoch,
        bytes.fromhex(manifest.version_id),
        manifest_format.encode(manifest),
    )
    try:
        backend.put(layout.resealed_manifest_key(manifest.version_id, keyring.epoch), blob)
    except ObjectExistsError:
        return False  # a re-run after an interruption: that copy was stored before
    return True


def newest_manifest_key(backend: Backend, version_id: str, epoch_hint: int) -> tuple[str, int]:
    """(storage key, epoch it is named for; 0 for the original) of ``version_id``'s newest manifest.

    ``epoch_hint`` is the reader's newest epoch. A copy for the epoch after it exists only when the
    reader's key is behind; a copy for the hint itself is the newest otherwise. Only when neither
    answers (a rekeyed namespace not re-encrypted yet, or a reader behind) are the copies listed.
    """
    hint = min(epoch_hint, layout.MAX_EPOCH)
    if hint < layout.MAX_EPOCH and not backend.exists(layout.resealed_manifest_key(version_id, hint + 1)):
        if hint == 0:
            return layout.manifest_key(version_id), 0
        if backend.exists(layout.resealed_manifest_key(version_id, hint)):
            return layout.resealed_manifest_key(version_id, hint), hint
    copies = [
        parsed
        for parsed in map(layout.parse_resealed_manifest_key, backend.list(layout.manifest_key(version_id)))
        if parsed is not None and parsed[0] == version_id
    ]
    if not copies:
        return layout.manifest_key(version_id), 0
    newest = max(epoch for _, epoch in copies)
    return layout.resealed_manifest_key(version_id, newest), newest


def load_manifest(backend: Backend, keyring: Keyring, vault_id: str, version: VersionRow) -> Manifest:
    """Read, authenticate and cross-check ``version``'s newest manifest against its catalog row."""
    return load_manifest_with_epoch(backend, keyring, vault_id, version)[0]


def load_manifest_with_epoch(
    backend: Backend, keyring: Keyring, vault_id: str, version: VersionRow
) -> tuple[Manifest, int]:
    """:func:`load_manifest`, and the key epoch the copy read was sealed under."""
    name = f"{version.artifact}@v{version.number}"
    key, _ = newest_manifest_key(backend, version.id, keyring.epoch)
    try:
        blob = backend.get(key, max_size=MAX_MANIFEST_OBJECT)
    except NotFoundError as exc:
        raise IntegrityError(f"the manifest of {name} is missing") from exc
    header = sealed.parse_unauthenticated_header(sealed.MANIFEST, blob)
    if header.epoch > keyring.epoch:
        raise AuthenticationError(
            f"no key for {name}: it is sealed under key epoch {header.epoch} of its namespace, and the "
            f"key you opened holds epochs up to {keyring.epoch} (the namespace was rekeyed; ask its "
            "owner for a new key slot)"
        )
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
        raise IntegrityError(f"the manifest of {name} does not match the catalog")
    return manifest, header.epoch
