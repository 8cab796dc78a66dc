"""Backends for the storage contract suite: every implementation passes the same tests.

The S3 backend runs against the session's moto server (``moto_endpoint`` in
tests/conftest.py), over plain HTTP, which the backend allows for loopback hosts. Each
test gets its own bucket. Fake credentials reach the backend through the standard AWS chain, set with
``monkeypatch`` for the duration of one test only; the shared-config files are pointed at
nothing so a developer's ``~/.aws`` never leaks in.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from vault.storage import StorageOptions
from vault.storage.base import Backend
from vault.storage.local import LocalBackend
from vault.storage.memory import MemoryBackend

if TYPE_CHECKING:
    pass

BACKENDS = ["memory", "local", "s3"]

FAKE_CREDENTIALS = {"aws_access_key_id": "AKIAMLVAULTTEST", "aws_secret_access_key": "mlvault-test-secret"}
REGION = "us-east-1"

_AWS_ENV_TO_CLEAR = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_CA_BUNDLE",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
)


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Fake credentials in the environment for this test only, nothing from ~/.aws."""
    for name in _AWS_ENV_TO_CLEAR:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", FAKE_CREDENTIALS["aws_access_key_id"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", FAKE_CREDENTIALS["aws_secret_access_key"])
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture
def s3_bucket(make_bucket: Callable[[], str]) -> str:
    return make_bucket()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "memory":
        store: Backend = MemoryBackend()
    elif request.param == "local":
        store = LocalBackend(tmp_path / "store", create=True)
    else:
        from vault.storage.s3 import S3Backend

        request.getfixturevalue("aws_env")
        endpoint = request.getfixturevalue("moto_endpoint")
        bucket = request.getfixturevalue("s3_bucket")
        store = S3Backend.from_url(f"s3://{bucket}/vault", StorageOptions(endpoint_url=endpoint))
    yield store
    store.close()
