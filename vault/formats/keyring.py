"""The keyring secret, the plaintext inside a keyring's key slots.

Layout: ``"MLVR" | version u8 = 1 | id key 32 B | epoch count u16 | count × DEK 32 B``.
The keyring id is not repeated here: the slot's authenticated header carries it.
"""

from __future__ import annotations

import struct

from vault.crypto.keyring import Keyring
from vault.errors import IntegrityError
from vault.formats import ALTERED

MAGIC = b"MLVR"
VERSION = 1
MAX_EPOCHS = 1024
_HEAD = struct.Struct(">4sB32sH")


def encode(keyring: Keyring) -> bytes:
    """Serialize a keyring's secrets."""
    return _HEAD.pack(MAGIC, VERSION, keyring.id_key, len(keyring.deks)) + b"".join(keyring.deks)


def decode(data: bytes, ring_id: bytes) -> Keyring:
    """Parse keyring secrets for ``ring_id``."""
    if len(data) < _HEAD.size:
        raise IntegrityError("keyring secret truncated")
    magic, version, id_key, count = _HEAD.unpack_from(data)
    if magic != MAGIC:
        raise IntegrityError("not a keyring secret (bad magic)")
    if version != VERSION:
        raise IntegrityError(
            f"keyring format version {version} is not one this vault's format writes{ALTERED}"
        )
    if not 1 <= count <= MAX_EPOCHS or len(data) != _HEAD.size + 32 * count:
        raise IntegrityError("keyring secret length does not match its epoch count")
    deks = tuple(data[_HEAD.size + 32 * i : _HEAD.size + 32 * (i + 1)] for i in range(count))
    return Keyring(ring_id, id_key, deks)
