"""Shared fixtures: cheap KDF parameters, vault factories, catalog URLs, and S3 on moto.

Catalog-facing tests run on SQLite always and on PostgreSQL when
``MLVAULT_TEST_POSTGRES_URL`` points at a server (e.g.
``postgresql+psycopg://postgres@127.0.0.1:5432/test``); each test gets a fresh database
created on that server and dropped afterwards.

S3 tests (tests/storage, tests/s3e2e) share one moto ``ThreadedMotoServer`` per session
on 127.0.0.1 with a random port (moto 5.2.5 reports it through ``get_host_and_port()``),
spoken to over plain HTTP. ``tests/storage/faultproxy.py`` is registered here as the
module ``faultproxy`` so every directory imports the same fault-injecting proxy.
"""

from __future__ import annotations

import base64
import importlib.util
import itertools
import json
import logging
import os
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils
from moto.server import ThreadedMotoServer

import vault
from vault.crypto.kdf import KdfParams

# Explicit, deliberately weak Argon2id parameters: tests must stay fast. Production code
# has no way to lower them other than passing them like this.
CHEAP_KDF = KdfParams(time_cost=1, memory_kib=8, parallelism=1)
PASSPHRASE = "correct horse battery staple"
POSTGRES_ENV = "MLVAULT_TEST_POSTGRES_URL"

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

_bucket_numbers = itertools.count()


def _register_faultproxy() -> Any:
    path = Path(__file__).resolve().parent / "storage" / "faultproxy.py"
    spec = importlib.util.spec_from_file_location("faultproxy", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["faultproxy"] = module
    spec.loader.exec_module(module)
    return module


faultproxy = _register_faultproxy()


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """URL of the moto S3 server shared by the whole session."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one log line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(scope="session")
def s3_admin(moto_endpoint: str) -> Iterator[S3Client]:
    """A plain boto3 client (explicit fake credentials) for setup and for looking behind mlvault's back."""
    session = boto3.session.Session(
        region_name="us-east-1", aws_access_key_id="AKIAMLVAULTADMIN", aws_secret_access_key="admin-secret"
    )
    client = session.client("s3", endpoint_url=moto_endpoint)
    yield client
    client.close()


@pytest.fixture
def make_bucket(s3_admin: S3Client) -> Callable[[], str]:
    """Create a fresh, uniquely named bucket on the moto server."""

    def create() -> str:
        name = f"mlvault-test-{next(_bucket_numbers)}"
        s3_admin.create_bucket(Bucket=name)
        return name

    return create


@pytest.fixture
def fault_proxy(moto_endpoint: str) -> Iterator[Any]:
    """A fault-injecting proxy in front of the moto server (no faults until a test sets them)."""
    with faultproxy.FaultProxy(int(moto_endpoint.rsplit(":", 1)[1])) as proxy:
        yield proxy


@pytest.fixture(autouse=True)
def _isolated_client_dirs(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep pins, keys and S3-vault catalogs of every test out of the real home directory."""
    home = tmp_path_factory.mktemp("client")
    monkeypatch.setenv("MLVAULT_CONFIG_DIR", str(home / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "data"))


@pytest.fixture
def cheap_kdf() -> KdfParams:
    return CHEAP_KDF


def _postgres_database() -> Iterator[str]:
    base = os.environ.get(POSTGRES_ENV)
    if not base:
        pytest.skip(
            f"PostgreSQL tests need {POSTGRES_ENV} (e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test)"
        )
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"mlvault_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(base).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database (skips without MLVAULT_TEST_POSTGRES_URL)."""
    yield from _postgres_database()


@pytest.fixture(params=["sqlite", "postgres"])
def catalog_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str | None]:
    """None (the vault's own SQLite file) or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield None
    else:
        yield from _postgres_database()


@pytest.fixture
def make_vault(tmp_path: Path) -> Iterator[Callable[..., vault.Vault]]:
    """Factory: ``make_vault(catalog_url=None, **init_kwargs)`` → an open local vault."""
    opened: list[vault.Vault] = []

    def factory(catalog_url: str | None = None, **kwargs: object) -> vault.Vault:
        path = tmp_path / f"vault-{len(opened)}"
        v = vault.init_vault(
            str(path), passphrase=PASSPHRASE, kdf=CHEAP_KDF, catalog_url=catalog_url, **kwargs
        )  # type: ignore[arg-type]
        opened.append(v)
        return v

    yield factory
    for v in opened:
        v.close()


@pytest.fixture
def local_vault(make_vault: Callable[..., vault.Vault]) -> vault.Vault:
    """An open local vault with a SQLite catalog."""
    return make_vault()


@pytest.fixture
def moto_kms_digest(monkeypatch: pytest.MonkeyPatch) -> Callable[[Any], None]:
    """``ensure(client)``: make moto's KMS Sign honour MessageType=DIGEST, as real KMS does.

    moto 5.2 ignores MessageType and hashes a DIGEST message again (getmoto/moto PR #10202).
    If the installed moto still does, its response handler is taken over for DIGEST
    requests only, for this test: a correction of the third-party double, never of mlvault.
    """

    def honours_digest(client: Any) -> bool:
        key_id = client.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
        public = serialization.load_der_public_key(client.get_public_key(KeyId=key_id)["PublicKey"])
        assert isinstance(public, ec.EllipticCurvePublicKey)
        digest = b"\x01" * 32
        signature = client.sign(
            KeyId=key_id, Message=digest, MessageType="DIGEST", SigningAlgorithm="ECDSA_SHA_256"
        )["Signature"]
        try:
            public.verify(signature, digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
        except InvalidSignature:
            return False
        return True

    def teach() -> None:
        from moto.kms.responses import KmsResponse

        original: Callable[[Any], str] = KmsResponse.sign

        def sign(self: Any) -> str:
            if self._get_param("MessageType") != "DIGEST":
                return original(self)
            key = self.kms_backend.describe_key(self._get_param("KeyId"))
            assert self._get_param("SigningAlgorithm") == "ECDSA_SHA_256"
            message = self._get_param("Message")
            if isinstance(message, str):
                message = message.encode("utf-8")
            if len(message) != 32:  # over HTTP the blob arrives base64-encoded
                message = base64.b64decode(message)
            assert len(message) == 32, "a DIGEST message must be a SHA-256 digest"
            signature = key.private_key.private_key.sign(message, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
            return json.dumps(
                {
                    "KeyId": key.arn,
                    "Signature": base64.b64encode(signature).decode("ascii"),
                    "SigningAlgorithm": "ECDSA_SHA_256",
                }
            )

        monkeypatch.setattr(KmsResponse, "sign", sign)

    def ensure(client: Any) -> None:
        if not honours_digest(client):
            teach()
            assert honours_digest(client)

    return ensure
