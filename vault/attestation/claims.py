"""What exactly a signature of a vault version covers, and how a signed statement is bound to it.

What is signed is the version's *authenticated manifest* (decrypted with the keyring,
cross-checked against the catalog), never the catalog's file list. A directory version signs
each file under its relative path; a single-file version signs one entry named ``"."``, as
``model-signing`` does, so ``mlvault verify FILE --signature`` and ``model_signing verify`` accept
a pulled file. The bundle's ``mlvault`` predicate names the vault id, artifact, version number
and version id (plus the signer's name): a bundle copied from another version, or another vault,
does not count for this one.
"""

from __future__ import annotations

from collections.abc import Mapping

from vault.catalog import VersionRow
from vault.errors import ContentMismatchError, UsageError
from vault.formats.manifest import Manifest
from vault.signing.hashing import GIT_IGNORE_PATHS, SINGLE_FILE_NAME, FileDigest
from vault.signing.oms import ExtraValue


def signed_files(manifest: Manifest) -> list[FileDigest]:
    """The OMS file list of a version: ``"."`` for a single file, relative paths for a directory."""
    if manifest.root == "file":
        only = manifest.files[0]
        return [FileDigest(SINGLE_FILE_NAME, only.sha256, only.size)]
    hidden = sorted({f.path for f in manifest.files if f.path.split("/", 1)[0] in GIT_IGNORE_PATHS})
    if hidden:
        raise UsageError(
            f"{manifest.artifact} contains {hidden[0]!r}: OMS verifiers always skip top-level "
            f"{', '.join(GIT_IGNORE_PATHS)}, so a signature over it could never verify on disk; "
            "push the version without those paths and sign that"
        )
    return [FileDigest(f.path, f.sha256, f.size) for f in manifest.files]


def manifest_digests(manifest: Manifest) -> dict[str, bytes]:
    """Path → SHA-256 of a version, named as a signature names them."""
    if manifest.root == "file":
        return {SINGLE_FILE_NAME: manifest.files[0].sha256}
    return {f.path: f.sha256 for f in manifest.files}


def version_claims(vault_id: str, version: VersionRow) -> dict[str, ExtraValue]:
    """The predicate fields that bind a signature to one version of one vault."""
    return {
        "vault_id": vault_id,
        "artifact": version.artifact,
        "version": version.number,
        "version_id": version.id,
    }


def check_claims(extra: Mapping[str, ExtraValue], vault_id: str, version: VersionRow) -> None:
    """``ContentMismatchError`` unless a signed statement names exactly this version."""
    for key, want in version_claims(vault_id, version).items():
        got = extra.get(key)
        if got != want or type(got) is not type(want):
            named = f"{extra.get('artifact')}@v{extra.get('version')} in vault {extra.get('vault_id')}"
            raise ContentMismatchError(
                f"the signature was made for {named}, not for {version.artifact}@v{version.number} "
                f"in vault {vault_id} ({key} differs)"
            )
