"""Signatures of vault versions and the vault's trust policy: the service-level composition.

    claims.py    what exactly a signature of a version covers, and how it names that version
    trust.py     the trust policy as this client accepts it (pinned admin key, no rollback)
    service.py   SignatureService: sign, export, verify, and the pull-time check

:func:`for_vault` builds a :class:`SignatureService` for an open vault with this client's pins.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vault.attestation.service import PullVerifier, SignatureService, SignResult, VerifyReport
from vault.attestation.trust import PolicyView
from vault.clientstate.pins import TrustPins

if TYPE_CHECKING:
    from vault.service import Vault

__all__ = ["PolicyView", "PullVerifier", "SignResult", "SignatureService", "VerifyReport", "for_vault"]


def for_vault(vault: Vault, pins: TrustPins) -> SignatureService:
    """The signature service of an open vault, with this client's trust pins; failed verifications
    go to the vault's audit log."""
    return SignatureService(
        vault,
        vault.signature_store,
        pins,
        vault_id=vault.config.vault_id,
        principal=vault.principal,
        audit=vault.audit,
    )
