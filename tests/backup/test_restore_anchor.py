"""What a restore trusts a snapshot's policies by (vault.backup.anchor): the admin key given or pinned,
rollbacks against this client's accepted serials, no trust on first use, and the re-pin afterwards."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from vault.access.policy import AccessPolicy, sign_access_policy
from vault.access.principals import new_principal
from vault.access.service import access_pins
from vault.backup.anchor import repin, snapshot_trust
from vault.clientstate import ClientState
from vault.clientstate.identities import Identities
from vault.crypto.kdf import KdfParams
from vault.errors import IntegrityError, UntrustedSignerError
from vault.signing.keys import generate_private_key
from vault.signing.policy import TrustPolicy, sign_policy
from vault.signing.signers import LocalSigner

VAULT = "ab" * 16
AT = datetime(2025, 1, 1, tzinfo=UTC)
ADMIN = LocalSigner(generate_private_key())
OTHER = LocalSigner(generate_private_key())


def table(*documents: tuple[int, bytes]) -> dict[str, Any]:
    rows = [[serial, doc.hex(), "admin", AT.isoformat()] for serial, doc in documents]
    return {"columns": ["serial", "document", "created_by", "created_at"], "rows": rows}


def snapshot_rows(tmp_path: Path, admin: LocalSigner = ADMIN, serial: int = 2) -> dict[str, Any]:
    job = Identities(tmp_path / f"ids-{os.urandom(4).hex()}").create("backup-job", None, KdfParams(1, 8, 1))
    policy = AccessPolicy(VAULT, serial - 1).with_principal(
        new_principal("backup-job", job, kind="service", expires=None, at=AT)
    )
    trust = TrustPolicy((), 4, VAULT)
    return {
        "access_policies": table((serial, sign_access_policy(policy, admin))),
        "trust_policies": table((4, sign_policy(trust, admin))),
    }


def test_no_anchor_is_refused_naming_the_claimed_key(tmp_path: Path) -> None:
    state = ClientState(tmp_path / "client")
    with pytest.raises(UntrustedSignerError, match=ADMIN.fingerprint()):
        snapshot_trust(snapshot_rows(tmp_path), VAULT, None, state=state)
    # A vault that never had a policy: nothing to anchor, unsigned accepted, nothing pinned.
    bare = snapshot_trust({}, VAULT, None, state=state)
    assert not bare.acceptance.requires_signature and bare.anchors == ()


def test_the_given_admin_key_verifies_and_is_pinned(tmp_path: Path) -> None:
    state = ClientState(tmp_path / "client")
    rows = snapshot_rows(tmp_path)
    with pytest.raises(UntrustedSignerError):
        snapshot_trust(rows, VAULT, None, admin_fingerprints=(OTHER.fingerprint(),), state=state)
    trust = snapshot_trust(rows, VAULT, None, admin_fingerprints=(ADMIN.fingerprint(),), state=state)
    assert trust.acceptance.requires_signature and [s[1] for s in trust.acceptance.services] == ["backup-job"]
    repin(state, VAULT, trust)
    assert access_pins(state).admins(VAULT) == (ADMIN.fingerprint(),)
    assert access_pins(state).policy_serial(VAULT) == 2
    assert (
        state.trust_pins.admins(VAULT) == (ADMIN.fingerprint(),)
        and state.trust_pins.policy_serial(VAULT) == 4
    )
    # Pinned now: the next restore needs no flag, and a snapshot by another admin is refused.
    assert snapshot_trust(rows, VAULT, None, state=state).anchors == (ADMIN.fingerprint(),)
    with pytest.raises(UntrustedSignerError):
        snapshot_trust(snapshot_rows(tmp_path / "o", OTHER), VAULT, None, state=state)


def test_rollbacks_against_accepted_serials_are_refused(tmp_path: Path) -> None:
    state = ClientState(tmp_path / "client")
    access_pins(state).pin(VAULT, ADMIN.fingerprint())
    access_pins(state).record_serial(VAULT, 5)
    with pytest.raises(IntegrityError, match="accepted serial 5"):
        snapshot_trust(snapshot_rows(tmp_path, serial=2), VAULT, None, state=state)
    with pytest.raises(IntegrityError, match="no access policy"):
        snapshot_trust({}, VAULT, None, state=state)
    state.trust_pins.record_serial(VAULT, 9)
    with pytest.raises(IntegrityError, match="trust policy"):
        snapshot_trust(snapshot_rows(tmp_path, serial=6), VAULT, None, state=state)
    with pytest.raises(IntegrityError, match="not the current one of vault cdcd"):  # another vault's
        snapshot_trust(
            snapshot_rows(tmp_path, serial=6), "cd" * 16, None, admin_fingerprints=(ADMIN.fingerprint(),)
        )
    with pytest.raises(IntegrityError, match="malformed"):
        snapshot_trust({"access_policies": {"columns": ["serial"], "rows": [[1]]}}, VAULT, None, state=state)


@pytest.mark.parametrize(
    "payload",
    [
        b'{"access_policies": {"columns": ["serial", "document"], "rows": [[1e999, "00"]]}}',
        b'{"access_policies": {"columns": ["serial", "document"], "rows": [[Infinity, "00"]]}}',
        b'{"access_policies": {"columns": ["serial", "document"], "rows": [[NaN, "00"]]}}',
        b"[" * 100_000 + b"]" * 100_000,
    ],
    ids=["huge-number", "infinity", "nan", "deep-nesting"],
)
def test_hostile_numbers_and_nesting_in_a_snapshot_are_integrity_errors(payload: bytes) -> None:
    """Anyone can seal to the recovery public key: the rows are hostile until verified."""
    import zstandard

    from vault.backup.snapshot import decompress_json

    with pytest.raises(IntegrityError, match="not compressed JSON"):
        decompress_json(zstandard.ZstdCompressor().compress(payload), 1 << 22, "the snapshot")


@pytest.mark.parametrize("serial", [1.5, True, "3", None, [1]])
def test_policy_rows_of_the_wrong_type_are_named(serial: object) -> None:
    from vault.backup.anchor import newest_document

    rows = {"access_policies": {"columns": ["serial", "document"], "rows": [[2, "00"], [serial, "00"]]}}
    with pytest.raises(IntegrityError, match="access_policies rows are malformed"):
        newest_document(rows, "access_policies")
