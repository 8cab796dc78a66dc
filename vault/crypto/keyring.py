"""Keyrings: the secrets that encrypt one top-level namespace.

A keyring holds an ``id_key`` (keys the BLAKE3 chunk ids, so nobody without the keyring
can probe the store for a known file) and one data-encryption key per epoch. Revoking a
reader starts a new epoch; old chunks keep the epoch they were written under.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import blake3

from vault.errors import IntegrityError

ID_SIZE = 16  # keyring ids, pack ids, version ids, slot ids: 128 random bits


def new_id() -> bytes:
    """A fresh random 128-bit identifier."""
    return os.urandom(ID_SIZE)


@dataclass(frozen=True)
class Keyring:
    """An opened keyring."""

    ring_id: bytes
    id_key: bytes
    deks: tuple[bytes, ...]

    @classmethod
    def generate(cls, ring_id: bytes | None = None) -> Keyring:
        """A new keyring with one epoch."""
        return cls(ring_id or new_id(), os.urandom(32), (os.urandom(32),))

    @property
    def epoch(self) -> int:
        """The current epoch: new data is written under it."""
        return len(self.deks) - 1

    def dek(self, epoch: int) -> bytes:
        """The data key of ``epoch``; IntegrityError for an epoch this keyring never had."""
        if not 0 <= epoch < len(self.deks):
            raise IntegrityError(f"object claims key epoch {epoch}, keyring has {len(self.deks)}")
        return self.deks[epoch]

    def chunk_id(self, data: bytes | memoryview) -> bytes:
        """Keyed BLAKE3-256 of a chunk's plaintext."""
        return blake3.blake3(data, key=self.id_key).digest()
