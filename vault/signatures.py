"""Moved: :mod:`vault.attestation` (service, claims, trust) and :mod:`vault.clientstate` (pins).

Kept only so callers not yet updated keep importing; new code imports from the new homes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vault import attestation
from vault.attestation.claims import check_claims, manifest_digests, signed_files, version_claims
from vault.attestation.service import PullVerifier, SignResult, VerifyReport
from vault.attestation.trust import PolicyView, check_glob, check_threshold
from vault.clientstate.pins import TrustPins as PinStore
from vault.clientstate.pins import check_fingerprint, is_fingerprint

if TYPE_CHECKING:
    from vault.service import Vault

__all__ = [
    "PinStore",
    "PolicyView",
    "PullVerifier",
    "SignResult",
    "SignatureService",
    "VerifyReport",
    "check_claims",
    "check_fingerprint",
    "check_glob",
    "check_threshold",
    "is_fingerprint",
    "manifest_digests",
    "signed_files",
    "version_claims",
]


def SignatureService(vault: Vault, pins: PinStore) -> attestation.SignatureService:
    """The old constructor: ``attestation.for_vault``."""
    return attestation.for_vault(vault, pins)
