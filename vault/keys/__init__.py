"""The key layer above :mod:`vault.keystore`: every slot kind, how an unlock reaches keys, slot admin.

Two levels of secrets (see :mod:`vault.keystore`): the vault **owner key**, wrapped by slots in
``keys/owner/``, and one **keyring** per top-level namespace, wrapped by slots in
``keys/<ring id>/``. Slot kinds and where they may sit:

============  =====================  ===================================================
kind          ring                   opened by
============  =====================  ===================================================
passphrase    owner                  Argon2id of a passphrase (:mod:`vault.keystore`)
aws-kms       owner                  AWS KMS Decrypt, KeyId pinned (:mod:`vault.keys.kms`)
x25519        owner ("recovery")     an identity's X25519 key: opens everything
x25519        a keyring              an identity's X25519 key: that namespace only
owner         a keyring              HKDF of the owner key
============  =====================  ===================================================

- :mod:`vault.keys.slots`: reading every slot of a ring (damaged ones named, never trusted), writing
  x25519 slots, opening the slots made for one identity (chosen by fingerprint, no Diffie-Hellman
  for the others);
- :mod:`vault.keys.kms`: the AWS KMS client (same credential chain as S3, bounded in time, errors
  mapped once) and aws-kms slots;
- :mod:`vault.keys.admin`: list, add and remove slots, with their catalog records and key events;
- :mod:`vault.keys.rekey`: a new data-key epoch for a namespace, every slot of its keyring rewritten;
- :mod:`vault.keys.owner_rotation`: a new owner key inside ``rekey`` after an owner-opening slot
  was removed, in an order a SIGKILL cannot break;
- :mod:`vault.keys.pins`: commitments to the owner key and keyrings, pinned per client, and when a
  rotated owner key is accepted;
- :mod:`vault.keys.owner_identity`: the vault's ``owner`` identity sealed under the owner key, the root
  admin key of the trust and access policies and the default admin signer;
- :mod:`vault.keys.sources`: the unlock sources, how the owner key was opened, and the narrow
  client-state and catalog interfaces the key cache uses.

The unlock order itself (identity, then KMS, then passphrase) lives in :mod:`vault.keycache`.
"""
