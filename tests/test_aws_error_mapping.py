"""vault.aws.translate: every botocore failure lands on the right branch of the error tree."""

from __future__ import annotations

import pytest
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
    ProfileNotFound,
    ReadTimeoutError,
    SSLError,
)

from vault import aws
from vault.errors import (
    AuthenticationError,
    ConfigurationError,
    MlvaultError,
    NotFoundError,
    StorageUnavailableError,
)


def client_error(status: int, code: str, message: str = "", retries: int = 0) -> ClientError:
    response = {
        "Error": {"Code": code, "Message": message},
        "ResponseMetadata": {"HTTPStatusCode": status, "RetryAttempts": retries},
    }
    return ClientError(response, "Sign")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("exc", "kind", "text"),
    [
        (client_error(404, "NoSuchKey"), NotFoundError, "not found (NoSuchKey)"),
        (client_error(400, "NotFoundException"), NotFoundError, "not found"),
        (client_error(403, "AccessDenied"), StorageUnavailableError, "access denied (Sign k)"),
        (client_error(400, "AccessDeniedException"), StorageUnavailableError, "access denied"),
        (client_error(503, "SlowDown", retries=5), StorageUnavailableError, "503 SlowDown (retried 5 times)"),
        (client_error(400, "ThrottlingException"), StorageUnavailableError, "unavailable"),
        (client_error(400, "InvalidKeyUsage", "wrong usage"), StorageUnavailableError, "refused Sign k"),
        (NoCredentialsError(), StorageUnavailableError, "no usable AWS credentials for Sign k"),
        (PartialCredentialsError(provider="env", cred_var="secret"), StorageUnavailableError, "credentials"),
        (NoRegionError(), StorageUnavailableError, "no AWS region"),
        (ProfileNotFound(profile="p"), StorageUnavailableError, "check ~/.aws/config"),
        (
            SSLError(endpoint_url="https://h", error=ValueError("bad cert")),
            StorageUnavailableError,
            "AWS_CA_BUNDLE",
        ),
        (EndpointConnectionError(endpoint_url="https://h"), StorageUnavailableError, "cannot reach"),
        (ReadTimeoutError(endpoint_url="https://h"), StorageUnavailableError, "cannot reach"),
        (BotoCoreError(), StorageUnavailableError, "error: Sign k"),
    ],
)
def test_translate_maps_each_failure(exc: Exception, kind: type[MlvaultError], text: str) -> None:
    assert aws.is_aws_error(exc)
    err = aws.translate(exc, "Sign k")  # type: ignore[arg-type]
    assert type(err) is kind
    assert text in str(err)


def test_callers_choose_what_denied_and_unconfigured_mean() -> None:
    def kms(exc: ClientError | BotoCoreError) -> MlvaultError:
        return aws.translate(
            exc, "Sign k", service="AWS KMS", denied=AuthenticationError, unconfigured=ConfigurationError
        )

    assert type(kms(client_error(400, "AccessDeniedException"))) is AuthenticationError
    assert type(kms(NoRegionError())) is ConfigurationError
    unavailable = kms(client_error(500, "InternalFailure"))
    assert type(unavailable) is StorageUnavailableError
    assert str(unavailable).startswith("AWS KMS unavailable")


def test_connection_failures_quote_the_retry_budget() -> None:
    err = aws.translate(EndpointConnectionError(endpoint_url="https://h"), "Get x", endpoint="h", attempts=4)
    assert "cannot reach h" in str(err) and "(retried 3 times)" in str(err)


def test_accessors_and_foreign_exceptions() -> None:
    exc = client_error(429, "TooManyRequests", retries=2)
    assert (aws.http_status(exc), aws.error_code(exc), aws.retry_count(exc)) == (429, "TooManyRequests", 2)
    assert aws.is_throttling(exc)
    assert not aws.is_throttling(client_error(400, "ValidationException"))
    plain = ValueError("not botocore")
    assert not aws.is_aws_error(plain)
    assert (aws.http_status(plain), aws.error_code(plain), aws.retry_count(plain)) == (0, "", 0)
