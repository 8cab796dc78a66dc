"""Helpers for the key-layer tests: identities in the isolated client dir, vaults opened by each source."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import vault
from vault.clientstate import ClientState
from vault.clientstate.identities import Identity, PublicIdentity
from vault.crypto.kdf import KdfParams

CHEAP_KDF = KdfParams(time_cost=1, memory_kib=8, parallelism=1)
PASSPHRASE = "correct horse battery staple"


def new_identity(name: str) -> PublicIdentity:
    """An unencrypted identity ``name`` in this test's client config dir."""
    return ClientState.default().identities().create(name, None, CHEAP_KDF)


def load_identity(name: str) -> Identity:
    return ClientState.default().identities().load(name, None)


def open_as(path: Path, name: str, **options: object) -> vault.Vault:
    """The vault at ``path`` opened with identity ``name`` only."""
    return vault.open_vault(str(path), identity=lambda: load_identity(name), **options)  # type: ignore[arg-type]


class FakeClock:
    """A clock tests move by hand."""

    def __init__(self, start: dt.datetime | None = None) -> None:
        self.now = start or dt.datetime(2027, 1, 1, 12, 0, tzinfo=dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += dt.timedelta(**delta)
