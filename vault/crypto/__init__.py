"""Cryptographic primitives: AEAD with HKDF subkeys, Argon2id, keyrings.

Only well-kept libraries do the math (pyca/cryptography, argon2-cffi, blake3); this
package fixes the parameters and turns every authentication failure into one opaque
:class:`vault.errors.DecryptionError`.
"""
