"""Test doubles for the audit chain: an HMAC checkpoint verifier and a chain builder."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
from datetime import UTC, datetime, timedelta

from vault.audit.chain import AuditRow, StoredRow, append, checkpoint_after
from vault.audit.checkpoint import SignedCheckpoint
from vault.errors import SignatureInvalidError

VAULT_ID = bytes(range(16))
OTHER_VAULT_ID = bytes(range(16, 32))
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


class HmacCheckpointVerifier:
    """Signs and checks checkpoints with a per-signer HMAC key (a stand-in for ECDSA identities)."""

    def __init__(self, keys: dict[str, bytes]) -> None:
        self._keys = keys

    def sign(self, checkpoint: SignedCheckpoint) -> SignedCheckpoint:
        tag = hmac.new(self._keys[checkpoint.signer], checkpoint.signed_bytes(), hashlib.sha256).digest()
        return dataclasses.replace(checkpoint, signature=tag)

    def verify_checkpoint(self, checkpoint: SignedCheckpoint) -> None:
        key = self._keys.get(checkpoint.signer)
        if key is None:
            raise SignatureInvalidError(f"{checkpoint.signer} may not sign checkpoints")
        tag = hmac.new(key, checkpoint.signed_bytes(), hashlib.sha256).digest()
        if not hmac.compare_digest(tag, checkpoint.signature):
            raise SignatureInvalidError("checkpoint signature does not verify")


VERIFIER = HmacCheckpointVerifier({"owner": b"k" * 32})


def make_row(seq: int, **changes: object) -> AuditRow:
    row = AuditRow(
        seq=seq,
        at=T0 + timedelta(minutes=seq),
        principal="p-alice" if seq % 2 else "p-ci",
        action="pull" if seq % 3 else "push",
        target=f"team/vision/m{seq % 4}@v{seq}",
        outcome="ok",
        details={"bytes": 1000 * seq, "files": [f"f{seq}.bin"]},
    )
    return dataclasses.replace(row, **changes)  # type: ignore[arg-type]


def build_chain(rows: list[AuditRow], vault_id: bytes = VAULT_ID) -> list[StoredRow]:
    chain: list[StoredRow] = []
    for row in rows:
        chain.append(append(chain[-1] if chain else None, row, vault_id))
    return chain


def sign_at(chain: list[StoredRow], seqs: list[int], vault_id: bytes = VAULT_ID) -> list[SignedCheckpoint]:
    by_seq = {stored.row.seq: stored for stored in chain}
    return [
        VERIFIER.sign(
            SignedCheckpoint(vault_id, checkpoint_after(by_seq[s]), T0 + timedelta(days=1), "owner")
        )
        for s in seqs
    ]
