"""Creating and opening a vault: from a URL to a backend, a config, a catalog and keys.

:func:`init_vault` writes the first key slot and the config; :func:`open_vault` reads the
config and finds the catalog. Storage is not trusted to choose where metadata goes: the
stored config may name a team catalog, but the client pins the first catalog URL it sees
for a vault id (in its :class:`vault.clientstate.ClientState`) and refuses a different one
later, and an empty catalog is never adopted for a vault whose storage already holds
versions.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

import platformdirs
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from vault import keystore, layout
from vault.catalog import open_catalog
from vault.crypto.kdf import RFC9106_LOW_MEMORY, KdfParams
from vault.crypto.keyring import new_id
from vault.errors import ConfigurationError, ConflictError, IntegrityError, NotFoundError, UsageError
from vault.formats import config as config_format
from vault.formats.config import ChunkerParams, VaultConfig
from vault.keycache import (
    Clock,
    IdentitySource,
    KeyCache,
    OpenedBy,
    Passphrase,
    Unlock,
    owner_commitment,
    passphrase_bytes,
    utc_now,
)
from vault.keys import owner_identity
from vault.keys.kms import AwsKms, KmsKeys, KmsOptions
from vault.service import Vault, default_principal
from vault.storage import Backend, StorageOptions, open_backend
from vault.storage.base import ObjectExistsError

if TYPE_CHECKING:
    from vault.access.gate import CallerSource
    from vault.clientstate import ClientState
    from vault.clientstate.pins import TrustPins


def shareable_catalog_url(url: str) -> str:
    """``url`` without any password (in the authority or as a query parameter)."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise UsageError(f"invalid catalog URL {url!r}") from exc
    query = {k: v for k, v in parsed.query.items() if k not in ("password", "passfile", "sslpassword")}
    return parsed.set(query=query)._replace(password=None).render_as_string(hide_password=False)


def _resolve_catalog_url(url: str, config: VaultConfig, override: str | None) -> str:
    if override:
        return override
    if config.catalog:
        return config.catalog
    parsed = urlparse(url)
    if parsed.scheme in ("", "file"):  # an embedded catalog lives inside the vault directory
        local = Path(parsed.path if parsed.scheme == "file" else url).expanduser().resolve()
        return f"sqlite:///{local / layout.CATALOG_FILE}"
    path = Path(platformdirs.user_data_dir("mlvault")) / "catalogs" / f"{config.vault_id}.sqlite"
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


def _admin_pins(state: ClientState) -> tuple[TrustPins, TrustPins]:
    """The trust-policy and access-policy admin pins of ``state``: the owner is root admin of both."""
    from vault.access.service import access_pins

    return state.trust_pins, access_pins(state)


def _pinned_admins(client_state: ClientState | None, vault_id: bytes) -> Callable[[], set[str]] | None:
    """The admin keys this client pinned for the vault (both policies): who may sign its records."""
    if client_state is None:
        return None
    return lambda: {fp for pins in _admin_pins(client_state) for fp in pins.admins(vault_id.hex())}


def _root_admin_pinner(
    client_state: ClientState | None, backend: Backend, vault_id: bytes
) -> Callable[[bytes], None] | None:
    """What the key cache calls once the owner key is open: pin the sealed owner identity as root admin.

    Stronger than trusting on first use whatever key signed the catalog's policy: only the owner key
    can have written that object, and this client's owner-key pin was checked before. A vault made
    before owner identities has none; read-only commands never create one. A damaged object is left
    to the commands that sign as the owner, which report it (exit 5).
    """
    if client_state is None:
        return None

    def pin(owner_key: bytes) -> None:
        try:
            found = owner_identity.load(backend, vault_id, owner_key)
        except IntegrityError:
            return
        if found is not None:
            owner_identity.pin_root_admin(_admin_pins(client_state), vault_id, found)

    return pin


def init_vault(
    url: str,
    *,
    passphrase: Passphrase,
    kdf: KdfParams = RFC9106_LOW_MEMORY,
    catalog_url: str | None = None,
    storage_options: StorageOptions | None = None,
    chunker: ChunkerParams | None = None,
    pack_size: int = 16 * 1024 * 1024,
    principal: str | None = None,
    client_state: ClientState | None = None,
    allow_slow_kdf: bool = False,
    clock: Clock = utc_now,
) -> Vault:
    """Create a new vault at ``url`` and return it open.

    With ``client_state``, a team catalog URL and the new owner key are pinned for the new vault
    (see open_vault), and the first slot is remembered as the one to try first.
    KDF parameters far slower than the default need ``allow_slow_kdf`` (see vault.keystore).
    """
    keystore.refuse_slow_kdf(kdf, allow_slow_kdf=allow_slow_kdf)
    secret = passphrase_bytes(passphrase)
    if not secret:
        raise UsageError("the passphrase must not be empty")
    backend = open_backend(url, storage_options, create=True)
    if backend.exists(layout.CONFIG):
        raise ConflictError(f"a vault already exists at {url}")
    vault_id = new_id()
    # Never write a password into storage; libpq reads PGPASSWORD / ~/.pgpass.
    stored_catalog = shareable_catalog_url(catalog_url) if catalog_url else None
    config = VaultConfig(
        vault_id.hex(), (chunker or ChunkerParams()).check(), pack_size, "zstd", stored_catalog
    )
    config_format.decode(config_format.encode(config))  # refuse what we could not read back
    catalog = open_catalog(_resolve_catalog_url(url, config, catalog_url))
    catalog.set_info("vault_id", config.vault_id)
    owner_key = keystore.create_owner(backend, vault_id, secret, kdf, allow_slow_kdf=allow_slow_kdf)
    owner = owner_identity.create(backend, vault_id, owner_key)  # before the config: init is not done
    try:
        backend.put(layout.CONFIG, config_format.encode(config))
    except ObjectExistsError:
        raise ConflictError(f"a vault already exists at {url}") from None
    if client_state is not None and stored_catalog:
        client_state.pin_catalog(config.vault_id, stored_catalog)
    actor = principal or default_principal()
    (first_slot,) = [key.rsplit("/", 1)[-1] for key in backend.list(layout.slot_prefix(layout.OWNER_RING))]
    catalog.record_slot(first_slot, layout.OWNER_RING, "passphrase", None, actor, clock())
    if client_state is not None:  # the creating client pins at once: no first use to trust later
        client_state.pin_owner_key(config.vault_id, owner_commitment(vault_id, owner_key))
        client_state.remember_slot(config.vault_id, first_slot)
        owner_identity.pin_root_admin(_admin_pins(client_state), vault_id, owner)
    keys = KeyCache(
        backend,
        vault_id,
        Unlock(passphrase=passphrase, kms=AwsKms(KmsOptions.from_storage(storage_options))),
        owner_key=owner_key,
        opened_by=OpenedBy("passphrase", first_slot, secret),
        slot_memory=client_state,
        key_pins=client_state,
        ledger=catalog,
        actor=actor,
        clock=clock,
        on_owner_key=_root_admin_pinner(client_state, backend, vault_id),
        admin_fingerprints=_pinned_admins(client_state, vault_id),
    )
    return Vault(backend, catalog, config, keys, principal=actor)


def open_vault(
    url: str,
    *,
    passphrase: Passphrase = None,
    catalog_url: str | None = None,
    storage_options: StorageOptions | None = None,
    principal: str | None = None,
    workers: int | None = None,
    client_state: ClientState | None = None,
    allow_slow_kdf: bool = False,
    identity: IdentitySource | None = None,
    kms: KmsKeys | None = None,
    use_kms: bool = False,
    passphrase_is_prompt: bool = False,
    clock: Clock = utc_now,
    caller: CallerSource | None = None,
) -> Vault:
    """Open the existing vault at ``url``. Keys are unlocked only when needed.

    The sources are tried in the order :mod:`vault.keycache` describes: ``identity`` (a callable
    loading it), then a KMS slot (``use_kms``, or automatically when no other source was given;
    ``kms`` defaults to boto3 with the storage options' profile and region), then the passphrase
    (``passphrase_is_prompt``: it would only prompt, so it is the last resort). A passphrase unlock
    tries first the key slot ``client_state`` remembers, and runs slots with far slower KDF
    parameters than the default only with ``allow_slow_kdf``.
    """
    backend = open_backend(url, storage_options)
    try:
        raw = backend.get(layout.CONFIG, max_size=config_format.MAX_SIZE)
    except NotFoundError:
        if any(
            next(iter(backend.list(prefix)), None) for prefix in (layout.KEYS_PREFIX, layout.PACKS_PREFIX)
        ):
            raise NotFoundError(
                f"the vault at {url} holds keys and packs but its config is missing; "
                "restore the `config` object from a backup (nothing was changed)"
            ) from None
        raise NotFoundError(f"no vault at {url} (run `mlvault init {url}` to create one)") from None
    config = config_format.decode(raw)
    # A catalog URL from storage may only open an existing catalog of this vault, and is
    # pinned only once that worked; a different pinned URL is refused before connecting.
    from_storage = config.catalog if catalog_url is None else None
    if from_storage and client_state is not None:
        pinned = client_state.pinned_catalog(config.vault_id)
        if pinned is not None and pinned != from_storage:
            client_state.pin_catalog(config.vault_id, from_storage)  # raises, naming both
    resolved = _resolve_catalog_url(url, config, catalog_url)
    catalog = open_catalog(resolved, only_for_vault=config.vault_id if from_storage else None)
    if from_storage and client_state is not None:
        client_state.pin_catalog(config.vault_id, from_storage)
    stored = catalog.get_info("vault_id")
    if stored is None:
        if next(iter(backend.list(layout.MANIFESTS_PREFIX)), None) is not None:
            catalog.close()
            raise ConfigurationError(
                f"the catalog {shareable_catalog_url(resolved)} is empty but the vault at {url} already "
                "holds versions; pass the vault's own catalog with --catalog"
            )
        catalog.set_info("vault_id", config.vault_id)
    elif stored != config.vault_id:
        catalog.close()
        raise ConfigurationError(f"the catalog belongs to vault {stored}, not to {config.vault_id} at {url}")
    actor = principal or default_principal()
    sources = Unlock(
        passphrase=passphrase,
        passphrase_is_prompt=passphrase_is_prompt,
        identity=identity,
        kms=kms or AwsKms(KmsOptions.from_storage(storage_options)),
        use_kms=use_kms,
        allow_slow_kdf=allow_slow_kdf,
    )
    keys = KeyCache(
        backend,
        bytes.fromhex(config.vault_id),
        sources,
        slot_memory=client_state,
        key_pins=client_state,
        ledger=catalog,
        actor=actor,
        clock=clock,
        on_owner_key=_root_admin_pinner(client_state, backend, bytes.fromhex(config.vault_id)),
        admin_fingerprints=_pinned_admins(client_state, bytes.fromhex(config.vault_id)),
    )
    # ``caller``: the identity's public half, so the capability gate needs no passphrase (default:
    # the loaded identity's); no identity acts as the owner (vault.access.gate).
    return Vault(
        backend,
        catalog,
        config,
        keys,
        principal=actor,
        workers=workers,
        client_state=client_state,
        caller=caller,
    )
