"""The one exception tree of mlvault.

Every error a user can meet is a subclass of :class:`MlvaultError`. Each class owns
its user-facing message style and its process exit code; the CLI prints
``error: <message>`` on one line and exits with ``exit_code``. Lower-layer errors
(OS, SDK, database) are mapped at the boundary with ``raise X from exc``.

::

    MlvaultError                      exit 1
    ├── UsageError                    exit 2   bad input: malformed reference, bad option value
    │   └── HostileManifestError      exit 2   a manifest path would escape the destination
    ├── NotFoundError                 exit 3   vault, artifact, version, tag, object, key
    ├── AuthenticationError           exit 4   wrong passphrase, no key slot this user can open
    ├── IntegrityError                exit 5   tampering, corruption, truncation, wrong object
    │   ├── DecryptionError           exit 5   an AEAD open failed (deliberately opaque)
    │   └── CatalogDamagedError       exit 5   the catalog database is corrupt or not a database
    ├── DestinationExistsError        exit 6   pull target already exists
    ├── StorageUnavailableError       exit 7   backend unreachable, throttled past retries, denied
    │   └── AuditUnavailableError     exit 7   the audit row could not be written: operation refused
    ├── ConfigurationError            exit 8   unsupported format/version/schema, bad vault config
    │   └── CatalogTooNewError        exit 8   catalog schema newer than this mlvault
    ├── ConflictError                 exit 9   an object or row that must be unique already exists
    ├── PermissionDeniedError         exit 15  the access policy does not give the caller the capability
    ├── AnomaliesFoundError           exit 16  `audit anomalies` found something to look at
    ├── BackupFailedError             exit 17  a backup schedule is overdue, or its last run failed
    ├── UnsafeContentError            exit 18  `scan` found a file whose load would run dangerous code
    └── VerificationError             exit 10  a signature check failed (base of the signing tree)
        ├── MalformedSignatureError   exit 11  bundle cannot be parsed / wrong media or predicate type
        ├── SignatureInvalidError     exit 12  cryptographic signature does not verify
        ├── UntrustedSignerError      exit 13  signer not trusted for this namespace / threshold unmet
        │   └── ProvenanceRefusedError exit 13 a version or tag without a valid provenance record
        └── ContentMismatchError      exit 14  a file differs, is missing, or is extra
"""

from __future__ import annotations


class MlvaultError(Exception):
    """Base of every mlvault error; ``str(err)`` is the one-line user message."""

    exit_code = 1


class UsageError(MlvaultError):
    """The user asked for something malformed (bad reference, bad option value)."""

    exit_code = 2


class HostileManifestError(UsageError):
    """A manifest holds a path that would write outside the destination."""


class NotFoundError(MlvaultError):
    """A vault, artifact, version, tag, key or stored object does not exist."""

    exit_code = 3


class AuthenticationError(MlvaultError):
    """Wrong passphrase, or no key slot that this user can open."""

    exit_code = 4


class IntegrityError(MlvaultError):
    """Stored data was modified, truncated, reordered or substituted."""

    exit_code = 5


class DecryptionError(IntegrityError):
    """An authenticated decryption failed. Deliberately says nothing more."""

    def __init__(self, message: str = "decryption failed: the data is corrupt or was tampered with") -> None:
        super().__init__(message)


class CatalogDamagedError(IntegrityError):
    """The catalog database is corrupt, truncated, or not a database at all."""


class DestinationExistsError(MlvaultError):
    """The pull destination already exists."""

    exit_code = 6


class StorageUnavailableError(MlvaultError):
    """The storage backend cannot be reached or refused the request."""

    exit_code = 7


class AuditUnavailableError(StorageUnavailableError):
    """The audit log could not record an operation, so the operation is refused (fail closed)."""


class ConfigurationError(MlvaultError):
    """The vault's configuration or a stored format is not one this mlvault supports."""

    exit_code = 8


class CatalogTooNewError(ConfigurationError):
    """The catalog schema was written by a newer mlvault."""


class ConflictError(MlvaultError):
    """Something that must be unique already exists."""

    exit_code = 9


class PermissionDeniedError(MlvaultError):
    """The signed access policy does not give the caller the capability this needs (checked first)."""

    exit_code = 15


class AnomaliesFoundError(MlvaultError):
    """``audit anomalies`` found at least one anomaly (for cron alerting)."""

    exit_code = 16


class BackupFailedError(MlvaultError):
    """A backup schedule is overdue or its last run failed (``backup status``, ``backup run``)."""

    exit_code = 17


class UnsafeContentError(MlvaultError):
    """A scanned file would import a dangerous global when loaded (a pickle that runs code)."""

    exit_code = 18


class VerificationError(MlvaultError):
    """A signature verification failed; subclasses say how."""

    exit_code = 10


class MalformedSignatureError(VerificationError):
    """The signature bundle cannot be parsed or has the wrong media/predicate type."""

    exit_code = 11


class SignatureInvalidError(VerificationError):
    """The signature does not verify under the given key."""

    exit_code = 12


class UntrustedSignerError(VerificationError):
    """The signer is not trusted for this namespace, or too few trusted signers."""

    exit_code = 13


class ProvenanceRefusedError(UntrustedSignerError):
    """No valid provenance record vouches for a version or a tag (missing, badly signed, or signed by a
    principal that does not hold ``push`` / ``tag`` there under the access policy)."""


class ContentMismatchError(VerificationError):
    """A file differs from, is missing from, or is extra to what was signed."""

    exit_code = 14
