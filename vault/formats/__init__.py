"""Byte formats: pure encode/decode functions, each with a magic, a version and caps.

Every format starts with a 4-byte magic and a one-byte format version, caps every length
field before allocating, and authenticates its header as AEAD associated data. Decoders
never trust a length they have not checked against both its cap and the bytes actually
present.

An object inside a vault (chunk record, sealed object, pack, key slot, and the keyring
secret and manifest inside sealed objects) whose version, cipher suite or kind names
something this vault's format does not write is refused as an IntegrityError: the vault
config pins the format version, a newer format would change that config (which older
clients refuse as a ConfigurationError), so an unknown value on an object was altered,
not written by a newer mlvault. Only the config itself and out-of-range KDF parameters
(see :mod:`vault.crypto.kdf`) are ConfigurationErrors.
"""

ALTERED = " (the object was altered or not written by mlvault)"
