"""``SignatureService``, ``SignatureCatalog`` and ``TrustPins`` through the Python API, on SQLite
and PostgreSQL catalogs."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

import vault
from vault import attestation
from vault.attestation import SignatureService
from vault.attestation.claims import signed_files
from vault.catalog import migrate
from vault.catalog.signatures import SignatureCatalog
from vault.clientstate.pins import TrustPins
from vault.errors import (
    ConfigurationError,
    ConflictError,
    ContentMismatchError,
    NotFoundError,
    UntrustedSignerError,
    UsageError,
)
from vault.signing import LocalSigner, generate_private_key
from vault.signing.keys import public_key_pem


@pytest.fixture
def model(tmp_path: Path) -> Path:
    root = tmp_path / "model"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "w.bin").write_bytes(b"\x00\x01" * 1000)
    (root / "config.json").write_text("{}\n")
    return root


@pytest.fixture
def pushed(make_vault: Callable[..., vault.Vault], catalog_url: str | None, model: Path) -> vault.Vault:
    v = make_vault(catalog_url=catalog_url)
    v.push(model, "team/resnet")
    return v


@pytest.fixture
def service(pushed: vault.Vault, tmp_path: Path) -> SignatureService:
    return attestation.for_vault(pushed, TrustPins(tmp_path / "client" / "pins.json"))


def test_the_signature_tables_are_part_of_the_schema_head() -> None:
    assert migrate.head_revision() >= "0002"  # 0002 added the signatures and policies tables


def test_sign_verify_and_pull_hook(pushed: vault.Vault, service: SignatureService, tmp_path: Path) -> None:
    signer, admin = LocalSigner(generate_private_key()), LocalSigner(generate_private_key())
    first = service.sign("team/resnet@v1", signer, "alice")
    second = service.sign("team/resnet@v1", signer, "alice")
    assert second.signature_id != first.signature_id  # separate rows
    view = service.trust_add("team/*", signer.public_key_pem(), admin)
    assert view.serial == 1 and view.admin_pinned_now == admin.fingerprint()
    report = service.verify("team/resnet")
    assert report.trusted_signers == (signer.fingerprint(),) and report.admin_pinned_now is None

    check = service.pull_verifier()
    v = pushed
    result = v.pull("team/resnet@v1", tmp_path / "out", verifier=check)
    assert result.files == 2 and check.report is not None
    assert check.report.trusted_signers == (signer.fingerprint(),)


def test_verify_for_pull_is_none_without_an_applicable_rule(
    pushed: vault.Vault, service: SignatureService
) -> None:
    v = pushed
    version = v.resolve("team/resnet")
    manifest = v.load_manifest(version)
    assert service.verify_for_pull(version, manifest) is None
    admin = LocalSigner(generate_private_key())
    service.trust_add("lab/*", LocalSigner(generate_private_key()).public_key_pem(), admin)
    assert service.verify_for_pull(version, manifest) is None
    service.trust_add("team/resnet", LocalSigner(generate_private_key()).public_key_pem(), admin)
    with pytest.raises(UntrustedSignerError, match="has no signature"):
        service.verify_for_pull(version, manifest)


def test_trust_edits(service: SignatureService) -> None:
    admin = LocalSigner(generate_private_key())
    a, b = LocalSigner(generate_private_key()), LocalSigner(generate_private_key())
    service.trust_add("team/*", a.public_key_pem(), admin)
    view = service.trust_add("team/*", b.public_key_pem(), admin, threshold=2)
    assert view.serial == 2 and [r.threshold for r in view.rules] == [2]
    with pytest.raises(UsageError, match="threshold 3"):
        service.trust_add("team/*", b.public_key_pem(), admin, threshold=3)
    with pytest.raises(NotFoundError):
        service.trust_remove("nope/*", admin)
    view = service.trust_remove("team/*", admin)
    assert view.rules == () and view.serial == 3
    shown = service.trust_show()
    assert shown is not None and shown.serial == 3
    with pytest.raises(UsageError, match="invalid pattern"):
        service.trust_add("team /*", a.public_key_pem(), admin)
    with pytest.raises(UsageError, match=r"P-256|PEM"):
        service.trust_add("team/*", b"not a key", admin)


def test_signature_catalog_policy_serials_and_rows(pushed: vault.Vault, service: SignatureService) -> None:
    catalog = SignatureCatalog(pushed.catalog.engine)
    assert catalog.latest_policy() is None
    catalog.store_policy(1, b"one", "alice")
    catalog.store_policy(5, b"five", "alice")
    for stale in (5, 3):
        with pytest.raises(ConflictError, match="not newer"):
            catalog.store_policy(stale, b"stale", "bob")
    assert catalog.latest_policy() == b"five"
    version = pushed.resolve("team/resnet")
    ids = [catalog.add_signature(version.id, "f" * 64, b'{"x": 1}', "alice") for _ in range(3)]
    rows = catalog.signatures_for(version.id)
    assert [r.id for r in rows] == ids and all(r.bundle == b'{"x": 1}' for r in rows)
    assert catalog.signatures_for("0" * 32) == []


def test_export_signature(service: SignatureService) -> None:
    with pytest.raises(NotFoundError, match="has no signature"):
        service.export_signature("team/resnet@v1")
    signer = LocalSigner(generate_private_key())
    service.sign("team/resnet@v1", signer)
    bundle = json.loads(service.export_signature("team/resnet@v1", signer.fingerprint()))
    assert bundle["verificationMaterial"]["publicKey"]["hint"] == signer.key_hint()
    with pytest.raises(UsageError, match="8 hex digits"):
        service.export_signature("team/resnet@v1", "abc")


def test_versions_holding_git_paths_are_not_signable(
    make_vault: Callable[..., vault.Vault], model: Path, tmp_path: Path
) -> None:
    (model / ".git").mkdir()
    (model / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    v = make_vault()
    v.push(model, "team/with-git")
    manifest = v.load_manifest(v.resolve("team/with-git"))
    with pytest.raises(UsageError, match=r"\.git/HEAD"):
        signed_files(manifest)


def test_single_file_versions_sign_as_dot(make_vault: Callable[..., vault.Vault], model: Path) -> None:
    v = make_vault()
    v.push(model / "config.json", "team/config")
    files = signed_files(v.load_manifest(v.resolve("team/config")))
    assert [f.path for f in files] == ["."]


def test_claims_must_name_the_version(pushed: vault.Vault, service: SignatureService, model: Path) -> None:
    signer, admin = LocalSigner(generate_private_key()), LocalSigner(generate_private_key())
    service.trust_add("team/*", public_key_pem(signer.public_key), admin)
    v = pushed
    v.push(model, "team/resnet")  # v2: same content, new version
    v1 = v.resolve("team/resnet@v1")
    service.sign("team/resnet@v2", signer)
    catalog = SignatureCatalog(v.catalog.engine)
    v2_bundle = catalog.signatures_for(v.resolve("team/resnet@v2").id)[0].bundle
    assert v2_bundle is not None
    catalog.add_signature(v1.id, signer.fingerprint(), v2_bundle, "mallory")
    with pytest.raises(ContentMismatchError, match="made for team/resnet@v2"):
        service.verify("team/resnet@v1")


def test_trust_pins(tmp_path: Path) -> None:
    pins = TrustPins(tmp_path / "cfg" / "pins.json")
    assert pins.admins("v1") == () and pins.policy_serial("v1") == 0
    pins.pin("v1", "a" * 64)
    pins.pin("v1", "b" * 64)
    pins.record_serial("v1", 4)
    pins.record_serial("v1", 2)  # never lowered
    assert pins.admins("v1") == ("a" * 64, "b" * 64) and pins.policy_serial("v1") == 4
    pins.pin("v1", "c" * 64, replace=True)
    assert pins.admins("v1") == ("c" * 64,)
    assert (tmp_path / "cfg" / "pins.json").stat().st_mode & 0o777 == 0o600
    with pytest.raises(UsageError):
        pins.pin("v1", "not-a-fingerprint")
    (tmp_path / "cfg" / "pins.json").write_text("[1, 2]")
    with pytest.raises(ConfigurationError, match="not an mlvault pin file"):
        pins.admins("v1")
