"""The vocabulary of audit rows: action names, outcomes and the detail keys readers rely on.

Writers of audit rows use these names, and :mod:`vault.audit.anomalies` reads them; a row's
``action``, ``outcome`` and ``details`` stay plain strings and JSON in the chain, so adding an
action later changes no stored byte. ``target`` is an artifact reference (``team/vision/resnet``
or ``team/vision/resnet@v3``) for the actions in :data:`ARTIFACT_ACTIONS`, and whatever the action
names otherwise (a pattern for grants, a principal id, a key slot).
"""

from __future__ import annotations

from enum import StrEnum


class Action(StrEnum):
    """What a row records."""

    PUSH = "push"
    PULL = "pull"
    SHOW = "show"  # listing a version's files
    TAG = "tag"
    SIGN = "sign"
    VERIFY = "verify"
    UNLOCK = "unlock"
    GRANT = "grant"
    DENY = "deny"
    REVOKE = "revoke"
    PRINCIPAL = "principal"
    KEY = "key"
    ATTEST = "attest"  # an admin re-attested a version (signed a provenance record for it)
    BACKUP = "backup"


class Outcome(StrEnum):
    """How the operation ended."""

    OK = "ok"
    DENIED = "denied"  # refused by access control before any work (exit 15)
    FAILED = "failed"  # attempted and failed: wrong passphrase, bad signature, tampering


ARTIFACT_ACTIONS = frozenset({Action.PUSH, Action.PULL, Action.SHOW, Action.TAG, Action.SIGN, Action.VERIFY})
DETAIL_BYTES = "bytes"  # int: plaintext bytes moved (pull, push)


def artifact_of(target: str) -> str:
    """``team/vision/resnet@v3`` -> ``team/vision/resnet``."""
    return target.partition("@")[0]


def namespace_of(target: str) -> str:
    """The artifact's namespace: its name without the last segment (``team/vision``)."""
    artifact = artifact_of(target)
    return artifact.rpartition("/")[0] or artifact
