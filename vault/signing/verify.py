"""Verification: signature first, then statement, then content.

The order is fixed and each step has its own error class, so a caller (and the CLI's exit code)
can tell what went wrong:

1. ``read_bundle_file`` / ``parse_bundle`` — size cap from ``fstat`` before reading a byte, then a
   strict structural parse → ``MalformedSignatureError``.
2. ``verify_bundle`` — ECDSA P-256/SHA-256 over the DSSE PAE of the exact payload bytes, under one
   of the given keys → ``SignatureInvalidError``. The bundle's key hint only picks which key to
   try; a bundle whose hint names none of the given keys fails here too.
3. ``parse_statement`` (inside ``verify_bundle``) — only now is the signed payload interpreted
   → ``MalformedSignatureError`` for a wrong predicate type or an inconsistent statement.
4. ``compare_files`` / ``check_directory`` — every signed file present with the signed digest,
   nothing extra unless allowed → ``ContentMismatchError`` naming the file. File *names* are
   compared before any byte is hashed, so a missing or extra file fails in milliseconds, and only
   signed files are hashed.

Whether the key that signed is *trusted for this artifact* is policy, not verification: see
``vault.signing.policy``. ``verify_directory`` is the offline deploy-host check
(``mlvault verify DIR --signature F --key K``): it needs key files and the bundle, nothing else.
"""

from __future__ import annotations

import dataclasses
import hmac
import os
import stat
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from vault.errors import (
    ContentMismatchError,
    MalformedSignatureError,
    NotFoundError,
    SignatureInvalidError,
    UsageError,
)
from vault.signing import keys
from vault.signing.hashing import GIT_IGNORE_PATHS, SINGLE_FILE_NAME, hash_files, list_files, path_sort_key
from vault.signing.oms import (
    DSSE_PAYLOAD_TYPE,
    MAX_BUNDLE_BYTES,
    Bundle,
    Statement,
    pae,
    parse_bundle,
    parse_statement,
)


@dataclasses.dataclass(frozen=True)
class VerifiedStatement(Statement):
    """A statement whose signature verified, and the fingerprint of the key that made it."""

    signer_fingerprint: str


def read_bundle_file(path: Path | str, max_bytes: int = MAX_BUNDLE_BYTES) -> bytes:
    """Read a bundle file, refusing it from its size (before reading) when over ``max_bytes``."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError as exc:
        raise NotFoundError(f"signature file not found: {path}") from exc
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise MalformedSignatureError(f"signature file {path} is not a regular file")
        if st.st_size > max_bytes:
            raise MalformedSignatureError(
                f"signature file {path} is {st.st_size} bytes, over the {max_bytes}-byte limit"
            )
        with os.fdopen(os.dup(fd), "rb") as fh:
            data = fh.read(max_bytes + 1)
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        raise MalformedSignatureError(f"signature file {path} is over the {max_bytes}-byte limit")
    return data


def verify_bundle(bundle: Bundle, public_keys: Sequence[ec.EllipticCurvePublicKey]) -> VerifiedStatement:
    """Check the bundle's signature under one of ``public_keys`` and return what it signs."""
    if not public_keys:
        raise UsageError("no public key given to verify the signature with")
    if bundle.payload_type != DSSE_PAYLOAD_TYPE:
        raise MalformedSignatureError(f"unsupported DSSE payload type {bundle.payload_type!r}")
    candidates = list(public_keys)
    if bundle.key_hint is not None:
        candidates = [k for k in candidates if keys.key_hint(k) == bundle.key_hint]
        if not candidates:
            raise SignatureInvalidError(
                f"the signature was made by a different key (hint {bundle.key_hint[:16]}) "
                f"than the {len(public_keys)} key(s) given"
            )
    message = pae(bundle.payload_type, bundle.payload)
    signer = _first_verifying_key(candidates, bundle.signature, message)
    if signer is None:
        raise SignatureInvalidError(
            "the signature does not verify under the given key: "
            "the bundle was modified or made by another key"
        )
    statement = parse_statement(bundle.payload)
    return VerifiedStatement(
        model_name=statement.model_name,
        root_digest=statement.root_digest,
        files=statement.files,
        ignore_paths=statement.ignore_paths,
        allow_symlinks=statement.allow_symlinks,
        extra=statement.extra,
        signer_fingerprint=keys.fingerprint(signer),
    )


def _first_verifying_key(
    candidates: Iterable[ec.EllipticCurvePublicKey], signature: bytes, message: bytes
) -> ec.EllipticCurvePublicKey | None:
    for key in candidates:
        try:
            key.verify(signature, message, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            continue
        return key
    return None


def compare_files(statement: Statement, actual: Mapping[str, bytes], allow_extra: bool = False) -> None:
    """Raise ``ContentMismatchError`` unless ``actual`` (path → SHA-256) matches the signed files."""
    problems = _name_problems(statement, actual.keys(), allow_extra)
    for f in statement.files:
        got = actual.get(f.path)
        if got is not None and not hmac.compare_digest(got, f.sha256):
            problems.append(
                f"file {f.path!r} differs from what was signed "
                f"(signed sha256 {f.sha256.hex()[:16]}…, found {got.hex()[:16]}…)"
            )
    _raise_first(problems)


def _name_problems(statement: Statement, present: Iterable[str], allow_extra: bool) -> list[str]:
    present_set = set(present)
    signed = {f.path for f in statement.files}
    problems = [f"file {p!r} is signed but missing" for p in sorted(signed - present_set, key=path_sort_key)]
    if not allow_extra:
        extra = sorted(present_set - signed, key=path_sort_key)
        problems += [f"file {p!r} is not covered by the signature" for p in extra]
    return problems


def _raise_first(problems: list[str]) -> None:
    if problems:
        more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
        raise ContentMismatchError(problems[0] + more)


def check_directory(
    model_path: Path | str,
    statement: Statement,
    *,
    allow_extra_files: bool = False,
    also_ignore: Iterable[str] = (),
    max_workers: int | None = None,
) -> None:
    """Check a directory (or single file) on disk against a verified statement."""
    root = Path(model_path)
    ignores = {*GIT_IGNORE_PATHS, *statement.ignore_paths, *also_ignore}
    names = list_files(root, ignores, allow_symlinks=statement.allow_symlinks)
    single_signed = [f.path for f in statement.files] == [SINGLE_FILE_NAME]
    if single_signed != (names == [SINGLE_FILE_NAME]):
        what = "a single file" if single_signed else "a directory"
        raise ContentMismatchError(f"the signature covers {what}, but {root} is not one")
    _raise_first(_name_problems(statement, names, allow_extra_files))
    signed = {f.path for f in statement.files}
    digests = hash_files(root, [n for n in names if n in signed], max_workers=max_workers)
    compare_files(statement, {d.path: d.sha256 for d in digests}, allow_extra=True)


def verify_directory(
    path: Path | str,
    bundle_path: Path | str,
    public_key_pem_paths: Sequence[Path | str],
    allow_extra_files: bool = False,
    *,
    max_workers: int | None = None,
) -> VerifiedStatement:
    """Offline deploy-host check: bundle signed by one of the keys, and the files match it."""
    bundle = parse_bundle(read_bundle_file(bundle_path))
    public_keys = [keys.read_public_key_file(p) for p in public_key_pem_paths]
    statement = verify_bundle(bundle, public_keys)
    check_directory(
        path,
        statement,
        allow_extra_files=allow_extra_files,
        also_ignore=_relative_inside(Path(bundle_path), Path(path)),
        max_workers=max_workers,
    )
    return statement


def _relative_inside(inner: Path, root: Path) -> list[str]:
    """``inner`` relative to ``root`` as a POSIX path, if it lies inside it (the bundle file itself)."""
    try:
        relative = inner.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return []
    return [] if relative == "." else [relative]
