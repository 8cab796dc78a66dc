"""``mlvault sign --kms-key-id`` against a moto KMS server over HTTP.

The CLI builds its own boto3 session; the endpoint reaches it through the standard
``AWS_ENDPOINT_URL_KMS`` variable (set with monkeypatch for one test), exactly as a user would
point it at a KMS-compatible endpoint. moto 5.2 hashes a ``MessageType=DIGEST`` message again
(getmoto/moto PR #10202); if the installed moto still does, its response handler is corrected for
DIGEST requests only (``moto_kms_digest`` in tests/conftest.py) — a fix to the third-party double,
never to mlvault code.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from clihelpers import Keys, Run, fails, ok
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from vault.signing.keys import public_key_pem

boto3 = pytest.importorskip("boto3")
moto_server = pytest.importorskip("moto.server")

REGION = "us-east-1"


@pytest.fixture(scope="module")
def kms_endpoint() -> Iterator[str]:
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def kms(
    kms_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, moto_kms_digest: Callable[[Any], None]
) -> Any:
    """A KMS client on the moto server; the environment points the CLI at the same server."""
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAMLVAULTTEST")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "mlvault-test-secret")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_ENDPOINT_URL_KMS", kms_endpoint)
    client = boto3.session.Session(region_name=REGION).client("kms")
    moto_kms_digest(client)
    yield client
    client.close()


def test_kms_sign_round_trip(run: Run, vault_ready: str, keys: Keys, kms: Any, tmp_path: Path) -> None:
    key_id = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    kms.create_alias(AliasName="alias/ml-signing", TargetKeyId=key_id)
    der = kms.get_public_key(KeyId=key_id)["PublicKey"]
    public = serialization.load_der_public_key(der)
    assert isinstance(public, ec.EllipticCurvePublicKey)
    kms_pub = tmp_path / "kms.pub"
    kms_pub.write_bytes(public_key_pem(public))

    signed = ok(run("--region", REGION, "sign", vault_ready, "--kms-key-id", "alias/ml-signing", "--json"))
    ok(run("trust", "add", "team/*", "--key", str(kms_pub), "--admin-key", "admin"))
    report = json.loads(ok(run("verify", vault_ready, "--json")).stdout)
    assert report["trusted_signers"] == [json.loads(signed.stdout)["signer_fingerprint"]]

    out, sig = tmp_path / "out", tmp_path / "kms.sig"
    ok(run("pull", vault_ready, str(out)))
    ok(run("signature", "export", vault_ready, "-o", str(sig)))
    ok(run("verify", str(out), "--signature", str(sig), "--key", str(kms_pub)))


def test_kms_errors_are_one_line(run: Run, vault_ready: str, kms: Any) -> None:
    fails(run("--region", REGION, "sign", vault_ready, "--kms-key-id", "alias/nope"), 3, "KMS key not found")
    symmetric = kms.create_key()["KeyMetadata"]["KeyId"]
    fails(run("--region", REGION, "sign", vault_ready, "--kms-key-id", symmetric), 8, "ECC_NIST_P256")
