"""What this client pinned per vault id: its catalog URL, trust-policy admin keys, keys, key slot.

Storage and the catalog are not trusted to tell a client where metadata lives or who may sign
the trust policy, so the first answer seen for a vault id is remembered here and a later,
different one is refused (trust on first use). Each kind is one :class:`JsonFile` in the
client's config directory:

* ``catalog-pins.json`` — ``{"<vault id>": "<catalog URL>"}`` (its historical flat format);
* ``pins.json`` — ``{"format": 1, "vaults": {"<vault id>": {"admins": [fp], "policy_serial": 7}}}``:
  the pinned admin keys and the highest policy serial accepted, so a rolled-back catalog is caught;
  the access pins also keep ``"policy_digest": "<sha256 hex>"`` of the document accepted at that
  serial (absent in older files), where the walk over delegated admins' documents stops;
* ``unlock-slots.json`` — ``{"format": 1, "vaults": {"<vault id>": "<slot id>"}}``: the key slot
  that last opened each vault, tried first next time so planted slots cannot go first;
* ``key-pins.json`` — ``{"format": 1, "vaults": {"<vault id>": {"owner": c, "rings": {"<ring id>": c}}}}``:
  commitments (64 hex) to the owner key and each keyring first opened (:mod:`vault.keycache` computes
  them), so a key slot planted later that wraps another key is refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vault.clientstate.jsonfile import Document, JsonFile
from vault.errors import ConfigurationError, UsageError

_FINGERPRINT_CHARS = frozenset("0123456789abcdef")
_SLOT_ID_CHARS = frozenset("0123456789abcdef")
MAX_SLOT_ID_CHARS = 64
_RING_ID_CHARS = 32


def is_fingerprint(value: str) -> bool:
    """True for a full key fingerprint: 64 lowercase hex digits."""
    return len(value) == 64 and set(value) <= _FINGERPRINT_CHARS


def check_fingerprint(value: str) -> str:
    """Return ``value`` if it is a full fingerprint, else ``UsageError``."""
    if not is_fingerprint(value):
        raise UsageError(
            f"{value!r} is not a key fingerprint (64 lowercase hex digits, see `mlvault key list`)"
        )
    return value


class CatalogPins:
    """The catalog URL each vault id was first opened with on this client."""

    def __init__(self, path: Path) -> None:
        self.file = JsonFile(
            path, what="catalog pin file", empty=dict, validate=_validate_catalog_pins, indent=1
        )

    def pinned(self, vault_id: str) -> str | None:
        """The URL pinned for ``vault_id``, or None."""
        value = self.file.read().get(vault_id)
        return value if isinstance(value, str) else None

    def pin(self, vault_id: str, catalog_url: str) -> None:
        """Pin ``catalog_url`` for ``vault_id`` on first use; ``ConfigurationError`` on a different one."""
        pinned = self.file.read().get(vault_id)
        if pinned is None:
            with self.file.update() as doc:
                pinned = doc.setdefault(vault_id, catalog_url)
        if pinned != catalog_url:
            raise ConfigurationError(
                f"the vault config now names catalog {catalog_url!r}, but this client pinned {pinned!r}; "
                f"if the catalog really moved, pass --catalog or edit {self.file.path}"
            )


def _validate_catalog_pins(doc: Any, path: Path) -> Document:
    if not isinstance(doc, dict) or not all(isinstance(v, str) for v in doc.values()):
        raise ConfigurationError(f"the catalog pin file {path} is malformed; remove the file to re-pin")
    return doc


class TrustPins:
    """Pinned trust-policy admin keys and the highest policy serial seen, per vault id."""

    def __init__(self, path: Path) -> None:
        self.file = JsonFile(path, what="pin file", empty=_empty_vaults, validate=_validate_trust_pins)

    @property
    def path(self) -> Path:
        """The pin file."""
        return self.file.path

    def admins(self, vault_id: str) -> tuple[str, ...]:
        """Pinned admin fingerprints for ``vault_id`` (empty if none)."""
        return tuple(self._entry(self.file.read(), vault_id)["admins"])

    def policy_serial(self, vault_id: str) -> int:
        """The highest trust-policy serial this client has accepted for ``vault_id`` (0 if none)."""
        return int(self._entry(self.file.read(), vault_id)["policy_serial"])

    def pin(self, vault_id: str, fingerprint: str, *, replace: bool = False) -> None:
        """Pin an admin key for ``vault_id``; ``replace`` drops the keys pinned before."""
        check_fingerprint(fingerprint)
        with self.file.update() as doc:
            entry = doc["vaults"].setdefault(vault_id, {})
            admins = [] if replace else list(entry.get("admins", []))
            if fingerprint not in admins:
                admins.append(fingerprint)
            entry["admins"] = admins

    def policy_digest(self, vault_id: str) -> str | None:
        """The SHA-256 of the document accepted at :meth:`policy_serial`, if recorded."""
        digest = self._entry(self.file.read(), vault_id)["policy_digest"]
        return digest if isinstance(digest, str) else None

    def record_serial(self, vault_id: str, serial: int, *, digest: str | None = None) -> None:
        """Remember that a policy with ``serial`` (and SHA-256 ``digest``) was accepted (never lowers
        the stored serial; a digest is kept only beside its own serial)."""
        if digest is not None:
            check_fingerprint(digest)
        with self.file.update() as doc:
            entry = doc["vaults"].setdefault(vault_id, {})
            stored = int(entry.get("policy_serial", 0))
            if serial > stored:
                entry.pop("policy_digest", None)
            entry["policy_serial"] = max(stored, serial)
            if digest is not None and serial >= stored:
                entry["policy_digest"] = digest

    def _entry(self, doc: Document, vault_id: str) -> dict[str, Any]:
        entry = doc["vaults"].get(vault_id, {})
        admins = entry.get("admins", []) if isinstance(entry, dict) else None
        serial = entry.get("policy_serial", 0) if isinstance(entry, dict) else None
        digest = entry.get("policy_digest") if isinstance(entry, dict) else None
        if (
            (digest is not None and not (isinstance(digest, str) and is_fingerprint(digest)))
            or not isinstance(admins, list)
            or not all(isinstance(a, str) and is_fingerprint(a) for a in admins)
            or not isinstance(serial, int)
            or isinstance(serial, bool)
        ):
            raise ConfigurationError(f"the pin file {self.path} has a malformed entry for vault {vault_id}")
        return {"admins": admins, "policy_serial": serial, "policy_digest": digest}


def _empty_vaults() -> Document:
    return {"format": 1, "vaults": {}}


def _validate_trust_pins(doc: Any, path: Path) -> Document:
    if not (isinstance(doc, dict) and doc.get("format") == 1 and isinstance(doc.get("vaults"), dict)):
        raise ConfigurationError(f"the pin file {path} is not an mlvault pin file; fix or remove it")
    return doc


class SlotMemory:
    """The key slot that last opened each vault on this client."""

    def __init__(self, path: Path) -> None:
        self.file = JsonFile(path, what="key slot file", empty=_empty_vaults, validate=_validate_slots)

    def last(self, vault_id: str) -> str | None:
        """The remembered slot id for ``vault_id``, if any."""
        slot = self.file.read()["vaults"].get(vault_id)
        return slot if isinstance(slot, str) and _is_slot_id(slot) else None

    def remember(self, vault_id: str, slot_id: str) -> None:
        """Remember ``slot_id`` as the one that opened ``vault_id`` (a no-op when already so)."""
        if not _is_slot_id(slot_id):
            raise UsageError(f"invalid key slot id {slot_id!r}")
        if self.last(vault_id) == slot_id:
            return
        with self.file.update() as doc:
            doc["vaults"][vault_id] = slot_id


def _is_slot_id(value: str) -> bool:
    return 0 < len(value) <= MAX_SLOT_ID_CHARS and set(value) <= _SLOT_ID_CHARS


def _validate_slots(doc: Any, path: Path) -> Document:
    if not (
        isinstance(doc, dict)
        and doc.get("format") == 1
        and isinstance(doc.get("vaults"), dict)
        and all(isinstance(v, str) for v in doc["vaults"].values())
    ):
        raise ConfigurationError(f"the key slot file {path} is not an mlvault state file; fix or remove it")
    return doc


class KeyPins:
    """Commitments to the owner key and keyrings each vault was first opened with on this client."""

    def __init__(self, path: Path) -> None:
        self.file = JsonFile(path, what="key pin file", empty=_empty_vaults, validate=_validate_key_pins)

    @property
    def path(self) -> Path:
        """The pin file."""
        return self.file.path

    def owner(self, vault_id: str) -> str | None:
        """The owner-key commitment pinned for ``vault_id``, if any."""
        return _text(self._vault(self.file.read(), vault_id).get("owner"))

    def ring(self, vault_id: str, ring_id: str) -> str | None:
        """The commitment pinned for keyring ``ring_id`` of ``vault_id``, if any."""
        return _text(self._vault(self.file.read(), vault_id).get("rings", {}).get(ring_id))

    def pin_owner(self, vault_id: str, commitment: str) -> str:
        """Pin ``commitment`` as the owner key of ``vault_id`` unless one is; return the pinned one."""
        pinned = self.owner(vault_id)
        if pinned is not None:
            return pinned
        _check_commitment(commitment)
        with self.file.update() as doc:
            entry = doc["vaults"][vault_id] = self._vault(doc, vault_id)
            pinned = entry.setdefault("owner", commitment)
        return str(pinned)

    def replace_owner(self, vault_id: str, commitment: str) -> None:
        """Pin ``commitment`` as the owner key of ``vault_id`` in place of any pinned one (a rotation)."""
        _check_commitment(commitment)
        with self.file.update() as doc:
            entry = doc["vaults"][vault_id] = self._vault(doc, vault_id)
            entry["owner"] = commitment

    def pin_ring(self, vault_id: str, ring_id: str, commitment: str) -> str:
        """Pin ``commitment`` for keyring ``ring_id`` unless one is; return the pinned one."""
        pinned = self.ring(vault_id, ring_id)
        if pinned is not None:
            return pinned
        _check_commitment(commitment)
        if not (len(ring_id) == _RING_ID_CHARS and set(ring_id) <= _SLOT_ID_CHARS):
            raise UsageError(f"invalid keyring id {ring_id!r}")
        with self.file.update() as doc:
            entry = doc["vaults"][vault_id] = self._vault(doc, vault_id)
            pinned = entry.setdefault("rings", {}).setdefault(ring_id, commitment)
        return str(pinned)

    def _vault(self, doc: Document, vault_id: str) -> dict[str, Any]:
        entry = doc["vaults"].get(vault_id, {})
        if not _is_key_pin_entry(entry):
            raise ConfigurationError(
                f"the key pin file {self.path} has a malformed entry for vault {vault_id}; "
                "remove that entry to re-pin on next use"
            )
        return dict(entry)


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _check_commitment(value: str) -> None:
    if not is_fingerprint(value):
        raise UsageError(f"invalid key commitment {value!r}")


def _is_key_pin_entry(entry: Any) -> bool:
    if not isinstance(entry, dict) or set(entry) - {"owner", "rings"}:
        return False
    owner = entry.get("owner")
    rings = entry.get("rings", {})
    return (
        (owner is None or (isinstance(owner, str) and is_fingerprint(owner)))
        and isinstance(rings, dict)
        and all(isinstance(c, str) and is_fingerprint(c) for c in rings.values())
    )


def _validate_key_pins(doc: Any, path: Path) -> Document:
    if not (isinstance(doc, dict) and doc.get("format") == 1 and isinstance(doc.get("vaults"), dict)):
        raise ConfigurationError(f"the key pin file {path} is not an mlvault pin file; fix or remove it")
    return doc
