"""Model signatures in the OpenSSF Model Signing (OMS) v1.0 format, and the trust policy.

The public front of the signing subsystem. It is independent of the rest of the vault: it reads
files and keys, writes and checks bundles, and needs no storage or catalog, which is what lets
``mlvault verify DIR --signature F --key K`` run on a deploy host with nothing else.

Layers, each in its own module:

* ``hashing``  — what a signature covers: files of a model path, in ``model-signing``'s order.
* ``keys``     — P-256 keys, key files (Argon2id + AES-256-GCM at rest), fingerprints.
* ``signers``  — where the private key lives: ``LocalSigner``, ``KmsSigner``.
* ``oms``      — the byte format: Sigstore bundle v0.3, DSSE, in-toto statement; strict parsing.
* ``verify``   — signature, then statement, then content, each failure its own error class.
* ``policy``   — which keys are trusted for which artifacts, in an admin-signed document.

Typical use::

    files = hash_directory("model/")
    bundle_json = sign_files(files, LocalSigner(key), {"artifact": "team/resnet"}, model_name="model")
    verify_directory("model/", "model.sig", ["signer.pub"])     # offline deploy check
"""

from vault.signing.hashing import FileDigest, hash_directory
from vault.signing.keys import (
    KdfParams,
    fingerprint,
    generate_private_key,
    load_private_key,
    public_key_pem,
    read_public_key_file,
    save_private_key,
)
from vault.signing.oms import Bundle, Statement, encode_bundle, parse_bundle, sign_files
from vault.signing.policy import (
    TrustDecision,
    TrustedKey,
    TrustPolicy,
    TrustRule,
    evaluate,
    sign_policy,
    verify_policy,
    verify_trusted,
)
from vault.signing.signers import KmsSigner, LocalSigner, Signer
from vault.signing.verify import (
    VerifiedStatement,
    check_directory,
    compare_files,
    read_bundle_file,
    verify_bundle,
    verify_directory,
)

__all__ = [
    "Bundle",
    "FileDigest",
    "KdfParams",
    "KmsSigner",
    "LocalSigner",
    "Signer",
    "Statement",
    "TrustDecision",
    "TrustPolicy",
    "TrustRule",
    "TrustedKey",
    "VerifiedStatement",
    "check_directory",
    "compare_files",
    "encode_bundle",
    "evaluate",
    "fingerprint",
    "generate_private_key",
    "hash_directory",
    "load_private_key",
    "parse_bundle",
    "public_key_pem",
    "read_bundle_file",
    "read_public_key_file",
    "save_private_key",
    "sign_files",
    "sign_policy",
    "verify_bundle",
    "verify_directory",
    "verify_policy",
    "verify_trusted",
]
