"""``vault.clientstate.identities``: identity files, their public form, and how hostile files are refused."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from vault.clientstate import ClientState
from vault.clientstate.identities import (
    MAX_PUBLIC_BYTES,
    Identities,
    PublicIdentity,
    _seal_from_parts,
)
from vault.crypto.kdf import KdfParams
from vault.errors import (
    AuthenticationError,
    ConfigurationError,
    DestinationExistsError,
    IntegrityError,
    NotFoundError,
    UsageError,
)

FAST = KdfParams(time_cost=1, memory_kib=8, parallelism=1)
SECRET = b"identity passphrase"


@pytest.fixture
def ids(tmp_path: Path) -> Identities:
    return ClientState(tmp_path / "config").identities()


class Passphrase:
    """A passphrase source that counts how often it was asked."""

    def __init__(self, value: bytes = SECRET) -> None:
        self.value = value
        self.calls = 0

    def __call__(self) -> bytes:
        self.calls += 1
        return self.value


@pytest.mark.parametrize("secret", [SECRET, None], ids=["encrypted", "unencrypted"])
def test_round_trip(ids: Identities, secret: bytes | None) -> None:
    public = ids.create("alice", secret, FAST)
    assert public.name == "alice"
    assert public.fingerprint == hashlib.sha256(public.x25519_public).hexdigest()
    assert ids.public("alice") == public
    assert ids.list() == [public]
    assert ids.encrypted("alice") is (secret is not None)
    source = Passphrase()
    identity = ids.load("alice", source)
    assert source.calls == (1 if secret else 0)
    assert identity.public == public
    assert identity.x25519_private.public_key().public_bytes_raw() == public.x25519_public
    signature = identity.ecdsa_private.sign(b"msg", ec.ECDSA(hashes.SHA256()))
    public.ecdsa_public_key().verify(signature, b"msg", ec.ECDSA(hashes.SHA256()))
    # the .pub file is exactly the public identity document, and parses back
    assert (ids.directory / "alice.pub").read_bytes() == public.encode()
    assert PublicIdentity.parse(public.encode()) == public
    # loading by path (``--identity FILE``) works too
    assert ids.load(str(ids.directory / "alice.id"), Passphrase()).public == public


def test_fingerprint_is_the_x25519_slot_fingerprint(ids: Identities) -> None:
    recipient = pytest.importorskip("vault.crypto.recipient")
    public = ids.create("alice", None, FAST)
    assert public.fingerprint == recipient.fingerprint(public.x25519_public).hex()


def test_file_modes(ids: Identities) -> None:
    ids.create("alice", None, FAST)
    ids.create("bob", SECRET, FAST)
    assert stat.S_IMODE(ids.directory.stat().st_mode) == 0o700
    for name in ("alice", "bob"):
        assert stat.S_IMODE((ids.directory / f"{name}.id").stat().st_mode) == 0o600
    assert [p.name for p in sorted(ids.directory.iterdir())] == ["alice.id", "alice.pub", "bob.id", "bob.pub"]


def test_wrong_passphrase_is_an_authentication_error(ids: Identities) -> None:
    ids.create("alice", SECRET, FAST)
    with pytest.raises(AuthenticationError, match="wrong passphrase for identity alice") as err:
        ids.load("alice", Passphrase(b"not it"))
    assert err.value.exit_code == 4
    with pytest.raises(AuthenticationError, match="a passphrase is needed"):
        ids.load("alice", None)


def test_existing_names_and_bad_names_are_refused(ids: Identities) -> None:
    ids.create("alice", None, FAST)
    with pytest.raises(DestinationExistsError, match="already exists"):
        ids.create("alice", SECRET, FAST)
    for bad in ("", ".hidden", "a/b", "../x", "a" * 65, "alice\n", "é"):
        with pytest.raises(UsageError, match="invalid identity name"):
            ids.create(bad, None, FAST)
    with pytest.raises(UsageError, match="must not be empty"):
        ids.create("bob", b"", FAST)
    with pytest.raises(NotFoundError, match="mlvault identity new carol"):
        ids.load("carol", None)


def test_a_stale_public_file_does_not_block_create(ids: Identities) -> None:
    ids.directory.mkdir(parents=True)
    (ids.directory / "alice.pub").write_text("left over by a crash")
    public = ids.create("alice", None, FAST)
    assert (ids.directory / "alice.pub").read_bytes() == public.encode()


def test_a_symlinked_identity_file_is_refused(ids: Identities, tmp_path: Path) -> None:
    ids.create("alice", None, FAST)
    real = tmp_path / "elsewhere.id"
    (ids.directory / "alice.id").rename(real)
    (ids.directory / "alice.id").symlink_to(real)
    for call in (lambda: ids.load("alice", None), lambda: ids.public("alice"), ids.list):
        with pytest.raises(UsageError, match="symbolic link"):
            call()
    link = tmp_path / "link.id"
    link.symlink_to(real)
    with pytest.raises(UsageError, match="symbolic link"):
        ids.load(str(link), None)
    assert ids.load(str(real), None).name == "alice"


def test_a_fifo_or_oversized_identity_file_is_refused(ids: Identities, tmp_path: Path) -> None:
    fifo = tmp_path / "fifo.id"
    os.mkfifo(fifo)
    with pytest.raises(UsageError, match="not a regular file"):
        ids.load(str(fifo), None)
    big = tmp_path / "big.id"
    big.write_bytes(b"\0" * (64 * 1024))
    with pytest.raises(UsageError, match="larger than 16 KiB"):
        ids.load(str(big), None)


def test_every_flipped_byte_of_an_encrypted_identity_is_refused(ids: Identities, tmp_path: Path) -> None:
    ids.create("alice", SECRET, FAST)
    original = (ids.directory / "alice.id").read_bytes()
    target = tmp_path / "t.id"
    for i in range(len(original)):
        flipped = bytearray(original)
        flipped[i] ^= 0x01
        target.write_bytes(bytes(flipped))
        with pytest.raises((AuthenticationError, IntegrityError, UsageError, ConfigurationError)):
            ids.load(str(target), Passphrase())


@pytest.mark.parametrize("cut", [0, 10, 60, -1])
def test_truncated_or_extended_identity_files_are_refused(ids: Identities, tmp_path: Path, cut: int) -> None:
    ids.create("alice", None, FAST)
    data = (ids.directory / "alice.id").read_bytes()
    target = tmp_path / "t.id"
    target.write_bytes(data[:cut])
    with pytest.raises((IntegrityError, UsageError)):
        ids.load(str(target), None)
    target.write_bytes(data + b"\0")
    with pytest.raises(IntegrityError, match="trailing data"):
        ids.load(str(target), None)


def test_private_keys_must_match_the_public_part(ids: Identities, tmp_path: Path) -> None:
    alice = ids.create("alice", None, FAST)
    bob = ids.create("bob", None, FAST)
    # bob's secret under alice's public document: an unencrypted file is not authenticated, so check
    bob_body = (ids.directory / "bob.id").read_bytes()[-len(_body_of(ids, "bob")) :]
    forged = _seal_from_parts(alice.encode(), bob_body, None, FAST, salt=bytes(16), nonce=bytes(12))
    (tmp_path / "forged.id").write_bytes(forged)
    with pytest.raises(IntegrityError, match="do not match its public part"):
        ids.load(str(tmp_path / "forged.id"), None)
    # a named file holding another name
    (ids.directory / "carol.id").write_bytes((ids.directory / "bob.id").read_bytes())
    with pytest.raises(IntegrityError, match="holds identity 'bob', not 'carol'"):
        ids.load("carol", None)
    assert bob.name == "bob"


def _body_of(ids: Identities, name: str) -> bytes:
    data = (ids.directory / f"{name}.id").read_bytes()
    pub = (ids.directory / f"{name}.pub").read_bytes()
    return data[data.index(pub) + len(pub) :]


def test_known_answer_vector(tmp_path: Path) -> None:
    """Fixed keys, salt and nonce give fixed bytes: the format cannot drift unnoticed."""
    x_key = X25519PrivateKey.from_private_bytes(bytes(range(32)))
    e_key = ec.derive_private_key(0x1D_E47_17E, ec.SECP256R1())
    spki = e_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    public = PublicIdentity("kat", x_key.public_key().public_bytes_raw(), spki)
    secret = x_key.private_bytes_raw() + e_key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    sealed = _seal_from_parts(public.encode(), secret, SECRET, FAST, salt=b"s" * 16, nonce=b"n" * 12)
    assert sealed[:8] == b"MLVIDNT\x00" and sealed[8:10] == b"\x01\x01"
    assert hashlib.sha256(sealed).hexdigest() == KAT_SHA256
    (tmp_path / "kat.id").write_bytes(sealed)
    identity = Identities(tmp_path / "ids").load(str(tmp_path / "kat.id"), Passphrase())
    assert identity.x25519_private.private_bytes_raw() == bytes(range(32))
    assert identity.ecdsa_private.private_numbers().private_value == 0x1D_E47_17E
    assert public.fingerprint == hashlib.sha256(x_key.public_key().public_bytes_raw()).hexdigest()


KAT_SHA256 = "df85438fc4253e9b343ceeaea479c8c1bce3a93aca88405ff677e3faed84ad1a"


# -- the public file ---------------------------------------------------------------------------


def _doc(ids: Identities) -> dict[str, object]:
    return json.loads(ids.create("alice", None, FAST).encode())  # type: ignore[no-any-return]


def test_public_document_shape(ids: Identities) -> None:
    doc = _doc(ids)
    assert list(doc) == ["format", "version", "name", "x25519", "ecdsa_p256"]
    assert doc["format"] == "mlvault-identity" and doc["version"] == 1 and doc["name"] == "alice"
    assert isinstance(doc["x25519"], str) and len(doc["x25519"]) == 64
    assert isinstance(doc["ecdsa_p256"], str)
    assert base64.b64decode(doc["ecdsa_p256"])[:2] == b"\x30\x59"  # a P-256 SubjectPublicKeyInfo


@pytest.mark.parametrize(
    "change",
    [
        {"extra": 1},
        {"format": "age"},
        {"version": "1"},
        {"version": True},
        {"name": "a/b"},
        {"name": 7},
        {"x25519": "AB" * 32},
        {"x25519": "ab" * 31},
        {"x25519": "ab" * 32 + "\n"},
        {"ecdsa_p256": "not base64!"},
        {"ecdsa_p256": base64.b64encode(b"\x30\x00").decode()},
        {"ecdsa_p256": None},
    ],
)
def test_malformed_public_documents_are_usage_errors(ids: Identities, change: dict[str, object]) -> None:
    doc = _doc(ids)
    doc.update(change)
    with pytest.raises(UsageError):
        PublicIdentity.parse(json.dumps(doc).encode())


def test_public_document_other_refusals(ids: Identities) -> None:
    doc = _doc(ids)
    missing = {k: v for k, v in doc.items() if k != "ecdsa_p256"}
    with pytest.raises(UsageError, match="exactly the fields"):
        PublicIdentity.parse(json.dumps(missing).encode())
    text = json.dumps(doc)
    with pytest.raises(UsageError, match="not UTF-8 JSON"):
        PublicIdentity.parse(text[:-1].encode() + b', "name": "bob"}')  # duplicate field
    with pytest.raises(UsageError, match="not UTF-8 JSON"):
        PublicIdentity.parse(b"\xff" + text.encode())
    with pytest.raises(UsageError, match="larger than 8 KiB"):
        PublicIdentity.parse(text.encode() + b" " * MAX_PUBLIC_BYTES)
    with pytest.raises(UsageError):
        PublicIdentity.parse(b"[]")
    with pytest.raises(ConfigurationError, match="version 2"):
        PublicIdentity.parse(json.dumps({**doc, "version": 2}).encode())
    # a P-256 key in a non-canonical base64 (padding dropped) or another curve
    unpadded = {**doc, "ecdsa_p256": str(doc["ecdsa_p256"]).rstrip("=") + "\n"}
    with pytest.raises(UsageError):
        PublicIdentity.parse(json.dumps(unpadded).encode())
    p384 = ec.generate_private_key(ec.SECP384R1()).public_key()
    der = p384.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    with pytest.raises(UsageError, match="P-256"):
        PublicIdentity.parse(json.dumps({**doc, "ecdsa_p256": base64.b64encode(der).decode()}).encode())


@pytest.mark.parametrize("secret", [SECRET, None], ids=["encrypted", "unencrypted"])
def test_a_tampered_public_part_of_a_secret_file_is_refused(ids: Identities, secret: bytes | None) -> None:
    public = ids.create("alice", secret, FAST)
    path = ids.directory / "alice.id"
    original = path.read_bytes()
    path.write_bytes(original.replace(b'"alice"', b'"alicf"'))
    for call in (lambda: ids.public("alice"), ids.list, lambda: ids.load("alice", Passphrase())):
        with pytest.raises(IntegrityError, match="holds identity 'alicf', not 'alice'"):
            call()
    # another X25519 key in the public part: listing cannot tell without the secret, loading can
    other = public.x25519_public.hex().encode()
    path.write_bytes(original.replace(other, other[:-1] + (b"0" if other[-1:] != b"0" else b"1")))
    expected = AuthenticationError if secret else IntegrityError
    with pytest.raises(expected):
        ids.load("alice", Passphrase())
