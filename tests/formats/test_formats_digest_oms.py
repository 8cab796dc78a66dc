"""The version digest is the OpenSSF Model Signing subject digest, including its file order."""

from __future__ import annotations

import hashlib

from vault.formats.manifest import FileEntry, content_digest
from vault.signing.hashing import FileDigest, sorted_digests


def test_content_digest_uses_the_oms_file_order() -> None:
    paths = ["a.b", "a/b", "a-b", "a/b/c", "b", "A"]
    files = [FileEntry(p, 0, 0, hashlib.sha256(p.encode()).digest(), ()) for p in paths]
    oms_order = sorted_digests([FileDigest(f.path, f.sha256) for f in files])
    expected = hashlib.sha256(b"".join(d.sha256 for d in oms_order)).hexdigest()
    assert content_digest(files) == expected
    # Plain string order would differ for these names, so the test can fail.
    naive = hashlib.sha256(b"".join(f.sha256 for f in sorted(files, key=lambda f: f.path))).hexdigest()
    assert naive != expected
