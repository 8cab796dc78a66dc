"""mlvault: an encrypted, deduplicating vault for machine-learning models and datasets.

The Python API the CLI itself uses::

    import vault
    v = vault.init("./vault", passphrase="...")          # or vault.open("./vault", passphrase=...)
    v.push("./resnet", "team/resnet", tags=["staging"])
    v.pull("team/resnet@staging", "./out")

The names below are imported on first use (PEP 562), so ``import vault.signing`` — what the
offline ``mlvault verify DIR --signature F --key K`` needs — does not load the catalog
(SQLAlchemy) or the storage layer.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from vault.errors import MlvaultError

if TYPE_CHECKING:
    from vault.bootstrap import init_vault, open_vault
    from vault.crypto.kdf import KdfParams
    from vault.service import Vault
    from vault.storage import StorageOptions

    init = init_vault
    open = open_vault

_LAZY = {
    "KdfParams": ("vault.crypto.kdf", "KdfParams"),
    "StorageOptions": ("vault.storage", "StorageOptions"),
    "Vault": ("vault.service", "Vault"),
    "init": ("vault.bootstrap", "init_vault"),
    "init_vault": ("vault.bootstrap", "init_vault"),
    "open": ("vault.bootstrap", "open_vault"),
    "open_vault": ("vault.bootstrap", "open_vault"),
}


def __getattr__(name: str) -> Any:
    try:
        module, attribute = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'vault' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value
    return value


__all__ = ["KdfParams", "MlvaultError", "StorageOptions", "Vault", "init", "init_vault", "open", "open_vault"]
