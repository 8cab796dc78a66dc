"""A trust policy names its vault: one copied from another vault is refused, whatever its serial."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

import vault
from vault import attestation
from vault.catalog.signatures import SignatureCatalog
from vault.clientstate.pins import TrustPins
from vault.errors import IntegrityError
from vault.signing import LocalSigner
from vault.signing.keys import generate_private_key, public_key_pem


def test_a_trust_policy_copied_from_another_vault_is_refused(
    make_vault: Callable[..., vault.Vault], tmp_path: Path
) -> None:
    admin = LocalSigner(generate_private_key())
    release = public_key_pem(generate_private_key().public_key())
    vault_a, vault_b = make_vault(), make_vault()
    service_b = attestation.for_vault(vault_b, TrustPins(tmp_path / "pins.json"))
    service_b.trust_add("team/*", release, admin)  # B's own policy, serial 1; pins the admin key
    service_a = attestation.for_vault(vault_a, TrustPins(tmp_path / "pins-a.json"))
    for _ in range(3):  # A's policy reaches a higher serial under the same admin key
        service_a.trust_add("*", release, admin)
    copied = SignatureCatalog(vault_a.catalog.engine).latest_policy_row()
    assert copied is not None and copied.serial > 1
    SignatureCatalog(vault_b.catalog.engine).store_policy(copied.serial, copied.document, "attacker")
    with pytest.raises(IntegrityError, match="another vault"):
        service_b.trust_show()
