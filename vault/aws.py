"""AWS SDK failures mapped onto the mlvault exception tree, once, for every AWS client.

botocore raises two families. ``ClientError``: the service answered, with an error code
and an HTTP status. ``BotoCoreError``: no answer came (no credentials or region, a TLS
failure, a refused connection, a body cut off). An adapter (the S3 backend, the KMS
signer) catches both around each SDK call and raises ``translate(exc, what)`` from it, so
no botocore type leaves the adapter. An adapter that can name the resource better (e.g.
"bucket X does not exist") looks at :func:`error_code` / :func:`http_status` first and
hands everything else to :func:`translate`.

::

    ClientError   404, *NotFound* codes             NotFoundError
                  403, *AccessDenied* codes         denied        (StorageUnavailableError)
                  429, 5xx, throttling codes        StorageUnavailableError  "… unavailable … retried n times"
                  any other code                    StorageUnavailableError  "… refused …"
    BotoCoreError no credentials, region, profile   unconfigured  (StorageUnavailableError)
                  TLS verification failed           StorageUnavailableError  (names AWS_CA_BUNDLE)
                  connection failed, timed out      StorageUnavailableError  "cannot reach …"
                  anything else                     StorageUnavailableError

``denied`` and ``unconfigured`` are parameters because their meaning depends on the
caller: for storage both mean "cannot use the store" (exit 7); for a signing key, access
denied means this identity may not use the key and missing credentials are a setup
problem.
"""

from __future__ import annotations

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionError,
    CredentialRetrievalError,
    HTTPClientError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
    ProfileNotFound,
    SSLError,
)

from vault.errors import MlvaultError, NotFoundError, StorageUnavailableError

__all__ = ["error_code", "http_status", "is_aws_error", "is_throttling", "retry_count", "translate"]

THROTTLE_CODES = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestLimitExceeded",
        "TooManyRequests",
        "TooManyRequestsException",
    }
)
NOT_FOUND_CODES = frozenset({"NoSuchKey", "NotFound", "NotFoundException", "ResourceNotFoundException"})
DENIED_CODES = frozenset({"AccessDenied", "AccessDeniedException", "Forbidden"})
_UNCONFIGURED = (
    NoCredentialsError,
    PartialCredentialsError,
    CredentialRetrievalError,
    NoRegionError,
    ProfileNotFound,
)


def is_aws_error(exc: BaseException) -> bool:
    """Whether ``exc`` is a botocore failure that :func:`translate` maps."""
    return isinstance(exc, ClientError | BotoCoreError)


def error_code(exc: BaseException) -> str:
    """The service's error code of a ``ClientError`` (``"NoSuchKey"``), else ``""``."""
    if not isinstance(exc, ClientError):
        return ""
    return str(exc.response.get("Error", {}).get("Code", ""))


def http_status(exc: BaseException) -> int:
    """The HTTP status of a ``ClientError``, else 0."""
    if not isinstance(exc, ClientError):
        return 0
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


def retry_count(exc: BaseException) -> int:
    """How often botocore retried the request that ended in ``exc`` (0 if unknown)."""
    if not isinstance(exc, ClientError):
        return 0
    return int(exc.response.get("ResponseMetadata", {}).get("RetryAttempts", 0))


def is_throttling(exc: BaseException) -> bool:
    """Whether the service answered "slow down" or failed on its side (429, 5xx)."""
    status = http_status(exc)
    return status >= 500 or status == 429 or error_code(exc) in THROTTLE_CODES


def translate(
    exc: ClientError | BotoCoreError,
    what: str,
    *,
    service: str = "AWS",
    endpoint: str = "AWS",
    attempts: int | None = None,
    denied: type[MlvaultError] = StorageUnavailableError,
    unconfigured: type[MlvaultError] = StorageUnavailableError,
) -> MlvaultError:
    """Map a botocore failure raised while doing ``what`` onto the exception tree.

    ``what`` names the operation and its target ("GetObject s3://b/p/config", "KMS Sign
    with key alias/k"); ``service`` starts the unavailable/refused messages ("storage",
    "AWS KMS"); ``endpoint`` is where the client connects; ``attempts`` is the client's
    retry budget, quoted when a connection failure outlived it.
    """
    if isinstance(exc, ClientError):
        return _client_error(exc, what, service, denied)
    if isinstance(exc, _UNCONFIGURED):
        return unconfigured(_unconfigured_message(exc, what))
    if isinstance(exc, SSLError):
        return StorageUnavailableError(
            f"TLS verification failed for {endpoint}: {exc} (set AWS_CA_BUNDLE for a private CA)"
        )
    if isinstance(exc, ConnectionError | HTTPClientError):
        retried = f" (retried {attempts - 1} times)" if attempts else ""
        return StorageUnavailableError(
            f"{service} unavailable: {what}: cannot reach {endpoint}: {exc}{retried}"
        )
    return StorageUnavailableError(f"{service} error: {what}: {exc}")


def _client_error(exc: ClientError, what: str, service: str, denied: type[MlvaultError]) -> MlvaultError:
    status, code = http_status(exc), error_code(exc)
    if status == 404 or code in NOT_FOUND_CODES:
        return NotFoundError(f"{what}: not found ({code or status})")
    if status == 403 or code in DENIED_CODES:
        return denied(f"access denied ({what}): check credentials and the resource policy")
    if is_throttling(exc):
        return StorageUnavailableError(
            f"{service} unavailable: {what} failed with {status} {code} (retried {retry_count(exc)} times)"
        )
    message = exc.response.get("Error", {}).get("Message", "")
    return StorageUnavailableError(f"{service} refused {what}: {status} {code} {message}".rstrip())


def _unconfigured_message(exc: BotoCoreError, what: str) -> str:
    if isinstance(exc, NoRegionError):
        return f"no AWS region for {what}: pass --region or set AWS_REGION / AWS_DEFAULT_REGION"
    if isinstance(exc, ProfileNotFound):
        return f"{exc} (for {what}): check ~/.aws/config"
    return (
        f"no usable AWS credentials for {what}: configure a profile, AWS_* environment "
        f"variables or an instance role ({exc})"
    )
