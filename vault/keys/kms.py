"""AWS KMS as a key-encryption key: aws-kms slots on the owner key, and the client that opens them.

An aws-kms slot holds a KMS key id and a data key that KMS encrypted (GenerateDataKey, KeySpec
AES_256) under the EncryptionContext {vault, keyring, slot}; the plaintext data key is the slot's
KEK. Opening it calls Decrypt with that context and ``KeyId`` pinned to the slot's key id, so a
slot copied to another vault, ring or slot id, or whose blob was made for another slot, is refused
by KMS itself, besides the AEAD over the slot header. The key id stored is the ARN KMS returned,
so re-pointing an alias never changes which key a slot trusts.

:class:`KmsKeys` is the narrow interface the key layer needs (two calls); :class:`AwsKms` is the
boto3 implementation, built from the same credential chain, profile and region as the S3 backend.
The endpoint is KMS's own (``AWS_ENDPOINT_URL_KMS`` or the profile's ``services`` section; the S3
``--endpoint-url`` names a storage endpoint, not a KMS one) and obeys the same plain-HTTP rule.

Every call is bounded: connect and read timeouts, botocore's standard retries, and a total
deadline (:attr:`KmsOptions.deadline`, 5 s) after which the call is abandoned and
:class:`StorageUnavailableError` says so — cron and CI never hang on KMS. Errors are mapped here,
once, onto the exception tree:

====================================================================  ==========================
AccessDenied, DisabledException, KMSInvalidStateException,            AuthenticationError (4)
NotFoundException, InvalidCiphertextException, IncorrectKeyException  "no usable key: …"
no credentials / region                                               AuthenticationError (4)
throttling or 5xx after retries, unreachable, deadline                StorageUnavailableError (7)
====================================================================  ==========================
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from vault import layout
from vault.crypto.keyring import new_id
from vault.errors import AuthenticationError, DecryptionError, MlvaultError, StorageUnavailableError
from vault.formats import keyslot
from vault.keys.slots import OWNER_RING_ID, StoredSlot
from vault.storage import Backend, StorageOptions

if TYPE_CHECKING:
    from botocore.exceptions import BotoCoreError, ClientError

T = TypeVar("T")
DEADLINE = 5.0
MAX_KMS_SLOTS_TRIED = 4  # planted aws-kms slots must not turn one unlock into many KMS calls
_NO_USABLE_KEY = {
    "AccessDenied": "AWS KMS denied {op} with key {key}: the ambient AWS credentials may not use it",
    "AccessDeniedException": "AWS KMS denied {op} with key {key}: the ambient AWS credentials may not use it",
    "DisabledException": "KMS key {key} is disabled; enable it or open the vault another way",
    "KMSInvalidStateException": "KMS key {key} cannot be used in its current state (e.g. pending deletion)",
    "NotFoundException": "KMS key {key} does not exist in this account and region",
    "InvalidCiphertextException": (
        "AWS KMS refused the data key of {what}: it was not made for this vault, keyring and slot"
    ),
    "IncorrectKeyException": "the data key of {what} was not encrypted under KMS key {key}",
}


@dataclass(frozen=True)
class DataKey:
    """A fresh data key: the key id KMS used (an ARN), the plaintext and its encrypted blob."""

    key_id: str
    plaintext: bytes
    blob: bytes


class KmsKeys(Protocol):
    """The two KMS calls the key layer makes."""

    def generate_data_key(self, key_id: str, context: Mapping[str, str]) -> DataKey:
        """GenerateDataKey (AES_256) under ``key_id`` with EncryptionContext ``context``."""
        ...

    def decrypt(self, key_id: str, blob: bytes, context: Mapping[str, str], what: str) -> bytes:
        """Decrypt ``blob`` with KeyId pinned to ``key_id``; ``what`` names the slot in errors."""
        ...


@dataclass(frozen=True)
class KmsOptions:
    """How to reach AWS KMS; the defaults give up within :data:`DEADLINE` seconds."""

    profile: str | None = None
    region: str | None = None
    endpoint_url: str | None = None
    allow_insecure_http: bool = False
    connect_timeout: float = 2.0
    read_timeout: float = 3.0
    max_attempts: int = 3
    deadline: float = DEADLINE

    @classmethod
    def from_storage(cls, options: StorageOptions | None) -> KmsOptions:
        """The S3 backend's profile, region and plain-HTTP rule (its endpoint is storage's, not KMS's)."""
        if options is None:
            return cls()
        return cls(
            profile=options.profile, region=options.region, allow_insecure_http=options.allow_insecure_http
        )


class AwsKms:
    """:class:`KmsKeys` on boto3; the client is built on first use."""

    def __init__(self, options: KmsOptions | None = None) -> None:
        self.options = options or KmsOptions()
        self._client: Any = None
        self._lock = threading.Lock()

    def generate_data_key(self, key_id: str, context: Mapping[str, str]) -> DataKey:
        """GenerateDataKey (AES_256) under ``key_id`` with EncryptionContext ``context``."""
        answer = self._call(
            f"GenerateDataKey with key {key_id}",
            key_id,
            "the new slot",
            lambda client: client.generate_data_key(
                KeyId=key_id, KeySpec="AES_256", EncryptionContext=dict(context)
            ),
        )
        return DataKey(str(answer["KeyId"]), bytes(answer["Plaintext"]), bytes(answer["CiphertextBlob"]))

    def decrypt(self, key_id: str, blob: bytes, context: Mapping[str, str], what: str) -> bytes:
        """Decrypt ``blob`` with KeyId pinned to ``key_id`` and EncryptionContext ``context``."""
        answer = self._call(
            f"Decrypt with key {key_id}",
            key_id,
            what,
            lambda client: client.decrypt(KeyId=key_id, CiphertextBlob=blob, EncryptionContext=dict(context)),
        )
        return bytes(answer["Plaintext"])

    def _call(self, op: str, key_id: str, what: str, request: Callable[[Any], T]) -> T:
        """Run ``request`` on the client within the deadline; map every failure."""
        from botocore.exceptions import BotoCoreError, ClientError

        outcome: list[Any] = []
        done = threading.Event()

        def run() -> None:
            try:
                outcome.append(("ok", request(self._get_client(op))))
            except (BotoCoreError, ClientError) as exc:
                outcome.append(("error", self._translate(exc, op, key_id, what)))
            except MlvaultError as exc:
                outcome.append(("error", exc))
            except Exception as exc:  # noqa: BLE001 — re-raised in the caller's thread
                outcome.append(("error", exc))
            finally:
                done.set()

        # A daemon thread: botocore calls cannot be cancelled, and an abandoned one must not keep
        # the process alive after the deadline.
        threading.Thread(target=run, name="mlvault-kms", daemon=True).start()
        if not done.wait(self.options.deadline):
            raise StorageUnavailableError(
                f"AWS KMS did not answer within {self.options.deadline:g} s ({op} for {what}); "
                "gave up on it (check the network, or open the vault with a passphrase or identity)"
            )
        status, value = outcome[0]
        if status == "error":
            raise value
        return value  # type: ignore[no-any-return]

    def _get_client(self, op: str) -> Any:
        with self._lock:
            if self._client is None:
                self._client = self._make_client()
            return self._client

    def _make_client(self) -> Any:
        import boto3
        from botocore.config import Config

        from vault.storage.s3_options import check_endpoint

        o = self.options
        check_endpoint(o.endpoint_url, allow_insecure_http=o.allow_insecure_http)
        config = Config(
            connect_timeout=o.connect_timeout,
            read_timeout=o.read_timeout,
            retries={"max_attempts": o.max_attempts, "mode": "standard"},
        )
        session = boto3.session.Session(profile_name=o.profile, region_name=o.region)
        client = session.client("kms", endpoint_url=o.endpoint_url, config=config)
        effective = client.meta.endpoint_url
        if effective != o.endpoint_url:  # from AWS_ENDPOINT_URL_KMS or the profile
            check_endpoint(effective, allow_insecure_http=o.allow_insecure_http)
        return client

    def _translate(self, exc: BotoCoreError | ClientError, op: str, key_id: str, what: str) -> MlvaultError:
        from vault import aws

        template = _NO_USABLE_KEY.get(aws.error_code(exc))
        if template is not None:
            reason = template.format(op=op, key=key_id, what=what)
            return AuthenticationError(f"no usable key: {reason} ({aws.error_code(exc)})")
        endpoint = self._client.meta.endpoint_url if self._client is not None else "AWS KMS"
        return aws.translate(
            exc,
            op,
            service="AWS KMS",
            endpoint=endpoint,
            attempts=self.options.max_attempts,
            denied=AuthenticationError,
            unconfigured=AuthenticationError,
        )


def write_kms_slot(
    backend: Backend, vault_id: bytes, owner_key: bytes, kms: KmsKeys, key_id: str
) -> tuple[str, str]:
    """Wrap the owner key under a new KMS data key; returns (slot id, the KMS key ARN pinned)."""
    slot_id = new_id()
    context = keyslot.kms_encryption_context_for(vault_id, OWNER_RING_ID, slot_id)
    data_key = kms.generate_data_key(key_id, context)
    blob = keyslot.encode_kms(
        vault_id, OWNER_RING_ID, slot_id, data_key.key_id, data_key.blob, data_key.plaintext, owner_key
    )
    backend.put(layout.slot_key(layout.OWNER_RING, slot_id), blob)
    return slot_id.hex(), data_key.key_id


def open_with_kms(stored: list[StoredSlot], kms: KmsKeys) -> tuple[str, bytes]:
    """(slot id, owner key) from the first aws-kms slot of the owner ring that KMS opens.

    At most :data:`MAX_KMS_SLOTS_TRIED` slots are tried; when none opens, the first slot's error
    is raised (AuthenticationError for a key that cannot be used, StorageUnavailableError when KMS
    is unreachable or throttled past its retries).
    """
    candidates = [s for s in stored if s.slot is not None and s.slot.kind == keyslot.KIND_AWS_KMS]
    if not candidates:
        raise AuthenticationError(
            "no usable key: the vault has no AWS KMS key slot (add one with `keys add-kms`)"
        )
    first: MlvaultError | None = None
    for item in candidates[:MAX_KMS_SLOTS_TRIED]:
        slot = item.slot
        assert slot is not None
        what = f"key slot {item.slot_id}"
        try:
            kek = kms.decrypt(
                keyslot.kms_key_id(slot), keyslot.kms_blob(slot), keyslot.kms_encryption_context(slot), what
            )
            secret = keyslot.unwrap(slot, kek)
        except DecryptionError:
            first = first or AuthenticationError(f"no usable key: {what} does not open with its KMS data key")
            continue
        except MlvaultError as exc:
            first = first or exc
            continue
        if len(secret) == 32:
            return item.slot_id, secret
    assert first is not None
    raise first
