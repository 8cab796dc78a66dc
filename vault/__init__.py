"""mlvault: an encrypted, deduplicating vault for machine-learning models and datasets.

The Python API the CLI itself uses::

    import vault
    v = vault.init("./vault", passphrase="...")          # or vault.open("./vault", passphrase=...)
    v.push("./resnet", "team/resnet", tags=["staging"])
    v.pull("team/resnet@staging", "./out")
"""

from vault.crypto.kdf import KdfParams
from vault.errors import MlvaultError
from vault.service import Vault, init_vault, open_vault
from vault.storage import StorageOptions

init = init_vault
open = open_vault  # noqa: A001 — the public name is vault.open(...)

__all__ = ["KdfParams", "MlvaultError", "StorageOptions", "Vault", "init", "open", "open_vault", "init_vault"]
