"""S3 Object Lock and server-side copy on moto over HTTP.

Buckets are created with ``ObjectLockEnabledForBucket=True``; retain-until dates are real future
dates (moto checks them against its own clock), so the injected clocks start at the real now.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from botocore.exceptions import ClientError

import vault
from vault import layout
from vault.backup import snapshot
from vault.backup.copy import copy_objects
from vault.backup.definition import Target, parse_definition
from vault.backup.forget import ForgetReport, forget_schedule
from vault.backup.lease import LeaseOwner
from vault.backup.run import target_opener
from vault.clientstate.identities import Identities
from vault.errors import ConfigurationError
from vault.storage import StorageOptions
from vault.storage.base import Retention
from vault.storage.s3 import S3Backend
from vault.storage.s3_options import MiB, S3Tuning

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

NOW = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=5)
_buckets = iter(range(10_000))


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAMLVAULTADMIN")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "admin-secret")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")


@pytest.fixture
def lock_bucket(s3_admin: S3Client) -> Callable[[], str]:
    def create() -> str:
        name = f"mlvault-lock-{os.getpid()}-{next(_buckets)}"
        s3_admin.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
        return name

    return create


def backend(url: str, endpoint: str, tuning: S3Tuning | None = None) -> S3Backend:
    options = StorageOptions(endpoint_url=endpoint, tuning=tuning)
    return S3Backend.from_url(url, options)


@pytest.fixture
def locked_store(lock_bucket: Callable[[], str], moto_endpoint: str) -> Iterator[S3Backend]:
    store = backend(f"s3://{lock_bucket()}/t", moto_endpoint)
    yield store
    store.close()


def test_locked_writes_refuse_a_version_delete_and_extend_only_later(
    locked_store: S3Backend,
    s3_admin: S3Client,
    make_bucket: Callable[[], str],
    moto_endpoint: str,
    tmp_path: Path,
) -> None:
    assert locked_store.object_lock_enabled
    until = NOW + timedelta(days=1)
    locked_store.put_locked("packs/ab/one", b"x" * 100, Retention("GOVERNANCE", until))
    big = tmp_path / "big"
    big.write_bytes(os.urandom(11 * MiB))
    multipart = backend(
        locked_store.url, moto_endpoint, S3Tuning(multipart_threshold=5 * MiB, part_size=5 * MiB)
    )
    multipart.put_file_locked("packs/ab/two", big, Retention("COMPLIANCE", until))
    assert not big.exists() and multipart.size("packs/ab/two") == 11 * MiB
    multipart.close()
    for key in ("packs/ab/one", "packs/ab/two"):
        got = locked_store.retained_until(key)
        assert got is not None and abs(got - until) < timedelta(seconds=1)

    head = s3_admin.head_object(Bucket=locked_store.bucket, Key="t/packs/ab/one")
    with pytest.raises(ClientError) as denied:  # a direct delete of the locked version fails
        s3_admin.delete_object(Bucket=locked_store.bucket, Key="t/packs/ab/one", VersionId=head["VersionId"])
    assert denied.value.response["Error"]["Code"] == "AccessDenied"

    later = Retention("GOVERNANCE", until + timedelta(days=2))
    assert locked_store.extend_retention("packs/ab/one", later)
    assert locked_store.retained_until("packs/ab/one") == later.until
    assert not locked_store.extend_retention("packs/ab/one", Retention("GOVERNANCE", until))  # never earlier
    assert locked_store.retained_until("packs/ab/one") == later.until

    plain = backend(f"s3://{make_bucket()}/t", moto_endpoint)
    assert not plain.object_lock_enabled
    with pytest.raises(ConfigurationError, match="Object Lock"):
        plain.put_locked("config", b"{}", Retention("GOVERNANCE", until))
    plain.close()


class NoReads(S3Backend):
    """A source whose bytes cannot pass through this process: any read fails the test."""

    def get(self, key: str, max_size: int | None = None) -> bytes:
        raise AssertionError(f"read {key} through the client")

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        raise AssertionError(f"read {key} through the client")


def test_s3_to_s3_on_one_endpoint_is_a_server_side_copy(
    make_bucket: Callable[[], str], lock_bucket: Callable[[], str], moto_endpoint: str
) -> None:
    source = backend(f"s3://{make_bucket()}/vault", moto_endpoint)
    objects = {"config": b"{}", "packs/ab/" + "ab" * 16: os.urandom(70_000), "manifests/" + "cd" * 16: b"m"}
    for key, data in objects.items():
        source.put(key, data)
    options = StorageOptions(endpoint_url=moto_endpoint)
    no_reads = NoReads.from_url(source.url, options)
    destination = backend(f"s3://{lock_bucket()}/copy", moto_endpoint)
    retention = Retention("GOVERNANCE", NOW + timedelta(days=1))
    result = copy_objects(
        no_reads, destination, [(k, len(v)) for k, v in objects.items()], retention=retention
    )
    assert (result.objects, result.bytes) == (3, sum(map(len, objects.values())))
    for key, data in objects.items():
        assert destination.get(key) == data and destination.retained_until(key) == retention.until
    again = copy_objects(no_reads, destination, [(k, len(v)) for k, v in objects.items()])
    assert again.objects == 0  # already there: write-once
    for store in (source, no_reads, destination):
        store.close()


@pytest.fixture
def backed(make_vault: Callable[..., vault.Vault], tmp_path: Path, cheap_kdf: object) -> vault.Vault:
    v = make_vault()
    ids = Identities(tmp_path / "identities")
    ids.create("recovery", None, cheap_kdf)  # type: ignore[arg-type]
    v.add_recovery(ids.public("recovery"))
    data = tmp_path / "model"
    data.mkdir()
    (data / "weights.bin").write_bytes(os.urandom(50_000))
    v.push(data, "team/model")
    return v


def add_locked(v: vault.Vault, bucket: str, endpoint: str) -> Target:
    target = Target(f"s3://{bucket}/mlv", endpoint_url=endpoint)
    definition = parse_definition(
        name="locked",
        cron="0 * * * *",
        tz="UTC",
        target=target,
        keep={"last": 1},
        object_lock="governance",
        retain_days=2,
    )
    v.backup_schedules(clock=lambda: NOW).add(definition)
    return target


def run_at(v: vault.Vault, when: datetime) -> str:
    (run,) = v.backup_runner(clock=lambda: when).run_named("locked").runs
    assert run.outcome == "success", run.message
    assert run.snapshot_id is not None
    return run.snapshot_id


def test_runs_lock_and_extend_forget_keeps_locked_snapshots(
    backed: vault.Vault, lock_bucket: Callable[[], str], moto_endpoint: str
) -> None:
    target_spec = add_locked(backed, lock_bucket(), moto_endpoint)
    first = run_at(backed, NOW)
    target = target_opener()(target_spec)
    vault_keys = sorted(backed.backend.list())
    for key in [*vault_keys, layout.snapshot_key(first), layout.snapshot_objects_key(first)]:
        assert target.retained_until(key) == NOW + timedelta(days=2), key

    second = run_at(backed, NOW + timedelta(days=1))  # the extension: still-needed objects move later
    for key in [*vault_keys, layout.snapshot_key(second)]:
        assert target.retained_until(key) == NOW + timedelta(days=3), key
    assert target.retained_until(layout.snapshot_key(first)) == NOW + timedelta(
        days=2
    )  # forgotten: not extended

    def forget_at(when: datetime) -> ForgetReport:
        return forget_schedule(
            backed.catalog,
            backed.backend,
            backed.config.vault_id,
            "locked",
            open_target=target_opener(),
            owner=LeaseOwner("t", 1),
            clock=lambda: when,
        )

    report = forget_at(NOW + timedelta(days=1, hours=1))
    reasons = {d.snapshot.id: d.reasons for d in report.decisions}
    assert reasons == {second: ("last snapshot", "locked", "newest"), first: ("locked",)}  # keep-last 1
    assert report.snapshots_removed == [] and snapshot.snapshot_ids(target) == [first, second]
    # Once its lock has run out (it was never extended), the forgotten snapshot goes.
    later = forget_at(NOW + timedelta(days=2, hours=1))
    assert later.snapshots_removed == [first] and snapshot.snapshot_ids(target) == [second]
    target.close()


def test_a_lock_schedule_on_a_bucket_without_object_lock_is_refused(
    backed: vault.Vault, make_bucket: Callable[[], str], moto_endpoint: str
) -> None:
    add_locked(backed, make_bucket(), moto_endpoint)
    report = backed.backup_runner(clock=lambda: NOW).run_named("locked")
    (run,) = report.runs
    assert run.outcome == "failed" and "does not have Object Lock enabled" in run.message
    with pytest.raises(ConfigurationError):  # exit 8
        report.raise_for_failures()
