"""aws-kms slots against moto's KMS over HTTP, with a fault-injecting proxy in front for key states.

Each KMS error real AWS gives (access denied, disabled key, key pending deletion) must be one line
and exit 4; throttling past botocore's retries exit 7; an automatic KMS unlock gives up within its
deadline and says so. A KMS slot copied to another vault, and a data key made under another
EncryptionContext, are refused.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from keyhelpers import CHEAP_KDF, PASSPHRASE
from kmsproxy import KmsFaultProxy

import vault
from vault import layout
from vault.crypto.keyring import new_id
from vault.errors import AuthenticationError, StorageUnavailableError
from vault.formats import keyslot
from vault.keys.kms import AwsKms, KmsOptions

REGION = "us-east-1"


@pytest.fixture
def proxy(moto_endpoint: str) -> Iterator[KmsFaultProxy]:
    with KmsFaultProxy(int(moto_endpoint.rsplit(":", 1)[1])) as running:
        yield running


def kms_for(endpoint: str, **options: Any) -> AwsKms:
    return AwsKms(KmsOptions(region=REGION, endpoint_url=endpoint, **options))


@pytest.fixture
def kms_vault(tmp_path: Path, kms_admin: Any, proxy: KmsFaultProxy) -> tuple[Path, str, str]:
    """A vault with a team version and an aws-kms slot; returns its path, the key ARN and slot id."""
    key_arn = kms_admin.create_key(KeySpec="SYMMETRIC_DEFAULT")["KeyMetadata"]["Arn"]
    path = tmp_path / "v"
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_bytes(b"kms-protected data")
    with vault.init_vault(str(path), passphrase=PASSPHRASE, kdf=CHEAP_KDF) as v:
        v.push(src, "team/model")
    with vault.open_vault(str(path), passphrase=PASSPHRASE, kms=kms_for(proxy.endpoint_url)) as v:
        slot_id = v.add_kms_slot(key_arn, label="ci")
    return path, key_arn, slot_id


def open_by_kms(path: Path, endpoint: str, **options: Any) -> vault.Vault:
    return vault.open_vault(str(path), kms=kms_for(endpoint, **options))


def test_kms_slot_round_trip(kms_vault: tuple[Path, str, str], proxy: KmsFaultProxy, tmp_path: Path) -> None:
    path, key_arn, slot_id = kms_vault
    with open_by_kms(path, proxy.endpoint_url) as v:
        v.pull("team/model", tmp_path / "out")
        (info,) = [s for s in v.key_slots() if s.slot_id == slot_id]
        assert (info.kind, info.opens, info.kms_key_id, info.label) == ("aws-kms", "owner", key_arn, "ci")
        assert info.last_used_at is not None
    assert (tmp_path / "out" / "f").read_bytes() == b"kms-protected data"
    assert proxy.seen["Decrypt"] == 1


def test_a_given_passphrase_never_calls_kms(kms_vault: tuple[Path, str, str], proxy: KmsFaultProxy) -> None:
    path, _, _ = kms_vault
    proxy.fail("Decrypt", "AccessDeniedException")
    with vault.open_vault(str(path), passphrase=PASSPHRASE, kms=kms_for(proxy.endpoint_url)) as v:
        v.unlock()
    assert proxy.seen["Decrypt"] == 0


@pytest.mark.parametrize(
    ("code", "says"),
    [
        ("AccessDeniedException", "AWS KMS denied Decrypt with key"),
        ("DisabledException", "is disabled"),
        ("KMSInvalidStateException", "cannot be used in its current state"),
        ("NotFoundException", "does not exist in this account and region"),
    ],
)
def test_kms_key_errors_mean_no_usable_key(
    kms_vault: tuple[Path, str, str], proxy: KmsFaultProxy, code: str, says: str
) -> None:
    path, key_arn, _ = kms_vault
    proxy.fail("Decrypt", code)
    with open_by_kms(path, proxy.endpoint_url) as v, pytest.raises(AuthenticationError) as info:
        v.unlock()
    message = str(info.value)
    assert info.value.exit_code == 4
    assert message.startswith("no usable key: ") and says in message and code in message
    assert "\n" not in message
    if code != "AccessDeniedException":
        assert key_arn in message


def test_throttling_after_retries_is_unavailable(
    kms_vault: tuple[Path, str, str], proxy: KmsFaultProxy
) -> None:
    path, _, _ = kms_vault
    proxy.fail("Decrypt", "ThrottlingException")
    with (
        open_by_kms(path, proxy.endpoint_url, max_attempts=2) as v,
        pytest.raises(StorageUnavailableError) as info,
    ):
        v.unlock()
    assert info.value.exit_code == 7
    assert "ThrottlingException (retried" in str(info.value)
    assert proxy.seen["Decrypt"] >= 2  # botocore retried before giving up


def test_automatic_kms_gives_up_at_its_deadline(
    kms_vault: tuple[Path, str, str], proxy: KmsFaultProxy
) -> None:
    path, _, _ = kms_vault
    proxy.hold("Decrypt")
    with (
        open_by_kms(path, proxy.endpoint_url, deadline=0.3, read_timeout=30) as v,
        pytest.raises(StorageUnavailableError, match=r"did not answer within 0.3 s .*gave up") as info,
    ):
        v.unlock()
    assert info.value.exit_code == 7
    proxy.release()


def test_kms_failure_then_missing_passphrase_says_both(
    kms_vault: tuple[Path, str, str], proxy: KmsFaultProxy
) -> None:
    path, _, _ = kms_vault
    proxy.fail("Decrypt", "DisabledException")

    def no_terminal() -> bytes:
        raise AuthenticationError("a passphrase is needed: set MLVAULT_PASSPHRASE (no terminal to prompt on)")

    with (
        vault.open_vault(
            str(path), passphrase=no_terminal, passphrase_is_prompt=True, kms=kms_for(proxy.endpoint_url)
        ) as v,
        pytest.raises(AuthenticationError, match=r"is disabled.*; a passphrase is needed"),
    ):
        v.unlock()


def test_a_kms_slot_copied_to_another_vault_is_refused(
    kms_vault: tuple[Path, str, str], proxy: KmsFaultProxy, tmp_path: Path
) -> None:
    path, _, slot_id = kms_vault
    other = tmp_path / "other"
    vault.init_vault(str(other), passphrase=PASSPHRASE, kdf=CHEAP_KDF).close()
    stolen = (path / "keys" / layout.OWNER_RING / slot_id).read_bytes()
    (other / "keys" / layout.OWNER_RING / slot_id).write_bytes(stolen)
    with vault.open_vault(str(other), kms=kms_for(proxy.endpoint_url), use_kms=True) as v:
        with pytest.raises(AuthenticationError, match="no usable key: the vault has no AWS KMS key slot"):
            v.unlock()
        (copied,) = [s for s in v.key_slots() if s.slot_id == slot_id]
        assert copied.kind == "damaged" and copied.damage == "it belongs to another vault"
    # Rewritten to claim the other vault (checksum recomputed): KMS refuses the context.
    other_id = bytes.fromhex(vault.open_vault(str(other)).config.vault_id)
    body = bytearray(stolen[: -keyslot.CHECKSUM_SIZE])
    body[6:22] = other_id
    (other / "keys" / layout.OWNER_RING / slot_id).write_bytes(bytes(body) + keyslot.checksum(bytes(body)))
    with open_by_kms(other, proxy.endpoint_url) as v, pytest.raises(AuthenticationError) as info:
        v.unlock()
    assert "InvalidCiphertextException" in str(info.value)
    assert proxy.seen["Decrypt"] == 1


def test_a_data_key_made_under_another_context_is_refused(
    kms_vault: tuple[Path, str, str], kms_admin: Any, proxy: KmsFaultProxy
) -> None:
    path, key_arn, _ = kms_vault
    with vault.open_vault(str(path), passphrase=PASSPHRASE) as v:
        vault_id, owner_key = v.vault_id, v.keys.owner_key()
    slot_id, elsewhere = new_id(), new_id()
    wrong_context = keyslot.kms_encryption_context_for(vault_id, bytes(16), elsewhere)
    data_key = kms_admin.generate_data_key(KeyId=key_arn, KeySpec="AES_256", EncryptionContext=wrong_context)
    blob = keyslot.encode_kms(
        vault_id, bytes(16), slot_id, key_arn, data_key["CiphertextBlob"], data_key["Plaintext"], owner_key
    )
    for existing in (path / "keys" / layout.OWNER_RING).iterdir():
        if existing.read_bytes()[5] == keyslot.KIND_AWS_KMS:
            existing.unlink()
    (path / "keys" / layout.OWNER_RING / slot_id.hex()).write_bytes(blob)
    with open_by_kms(path, proxy.endpoint_url) as v, pytest.raises(AuthenticationError) as info:
        v.unlock()
    assert "not made for this vault, keyring and slot" in str(info.value)


def test_decrypt_pins_the_slot_key_id(
    kms_vault: tuple[Path, str, str], kms_admin: Any, proxy: KmsFaultProxy
) -> None:
    """A slot whose blob is another key's ciphertext, relabelled with our key id, does not open."""
    path, key_arn, _ = kms_vault
    other_arn = kms_admin.create_key(KeySpec="SYMMETRIC_DEFAULT")["KeyMetadata"]["Arn"]
    with vault.open_vault(str(path), passphrase=PASSPHRASE) as v:
        vault_id, owner_key = v.vault_id, v.keys.owner_key()
    slot_id = new_id()
    context = keyslot.kms_encryption_context_for(vault_id, bytes(16), slot_id)
    data_key = kms_admin.generate_data_key(KeyId=other_arn, KeySpec="AES_256", EncryptionContext=context)
    blob = keyslot.encode_kms(
        vault_id, bytes(16), slot_id, key_arn, data_key["CiphertextBlob"], data_key["Plaintext"], owner_key
    )
    for existing in (path / "keys" / layout.OWNER_RING).iterdir():
        if existing.read_bytes()[5] == keyslot.KIND_AWS_KMS:
            existing.unlink()
    (path / "keys" / layout.OWNER_RING / slot_id.hex()).write_bytes(blob)
    with open_by_kms(path, proxy.endpoint_url) as v, pytest.raises(AuthenticationError):
        v.unlock()
    assert os.environ["AWS_ACCESS_KEY_ID"] == "AKIAMLVAULTTEST"
