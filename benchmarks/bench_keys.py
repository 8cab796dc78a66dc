"""Benchmark: unlock time by passphrase, identity and AWS KMS on vaults with few and many key slots,
and ``rekey --reencrypt`` throughput against a push of the same bytes.

    python benchmarks/bench_keys.py [--size-mib 1024] [--repeat 5] [--workdir DIR]

Starts a moto server (``ThreadedMotoServer``) on 127.0.0.1 at a random port in this process and
reaches its KMS through ``AWS_ENDPOINT_URL_KMS``, with fake AWS credentials set in this process's
environment only. For each size in :data:`SLOT_TOTALS` it builds a local vault with the default
passphrase KDF (:data:`vault.crypto.kdf.RFC9106_LOW_MEMORY`), one small version in namespace
``bench``, a recipient slot for an identity ``reader`` on that keyring and an aws-kms slot on the
owner key. Those four slots (passphrase, aws-kms, the keyring's owner slot, the recipient slot)
are the smallest vault that all three unlocks can open, so the first row has 4 slots, not 1 (each
unlock path needs a slot of its own, and a keyring always has its owner slot). So a first row
measures the passphrase unlock alone on the smallest vault there is: ``init`` plus one push, i.e.
the one passphrase slot on the owner ring and the keyring's owner slot ("2 (1+1)"). The owner
identity that ``init`` seals under the owner key (``owner-identity/<id>``) is not a key slot; an
owner-key unlock with a client state reads it once (one GET) to pin it as root admin, and that GET
is inside the passphrase and KMS rows. The other rows are filled up to 100 and 1,000 slots with
x25519 slots for random recipients, half on the owner ring and half on the ``bench`` keyring,
written directly through
:func:`vault.keys.slots.write_x25519_slot` (storage only; unlock never reads the catalog records).

Each measurement is a fresh ``vault.open_vault`` followed by the first ``keys.keyring(ring)`` on
``bench``, in this process (imports already done), with one untimed warm-up and then the median of
``--repeat`` runs; the client state (slot memory, key pins) is the one the setup used, as for a
returning user. ``reader`` is an unencrypted identity (as for unattended jobs), so loading it runs
no Argon2. The passphrase row also shows Argon2's share (one ``stretch`` at the default
parameters, timed right after each run, over that run's total); the KMS row shows the share spent
inside KMS calls, which includes building the boto3 client, as every new process does. A separate
line times the KMS unlock alone (``open_with_kms``: Decrypt + unwrap) on an already-built client.

Then, when this build's :class:`vault.Vault` has ``rekey(..., reencrypt=...)``, it pushes
``--size-mib`` of random data into a fresh vault and times ``rekey --reencrypt`` of that namespace
against the push (target: at most 1.5x the push's time). Everything lives in one temporary
directory, removed at the end.
"""

from __future__ import annotations

import argparse
import inspect
import logging
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import vault
from vault.clientstate import ClientState
from vault.crypto.kdf import RFC9106_LOW_MEMORY, stretch
from vault.keys.kms import AwsKms, DataKey, KmsOptions, open_with_kms

SLOT_TOTALS = (4, 100, 1000)
FIXED_SLOTS = 4  # passphrase + aws-kms (owner ring), owner slot + reader's slot (keyring)
NAMESPACE = "bench"
PASSPHRASE = b"bench keys passphrase"
REGION = "us-east-1"
MIB = 1 << 20
METHODS = ("passphrase", "identity", "aws-kms")


class TimedKms:
    """A :class:`vault.keys.kms.KmsKeys` that adds up the seconds spent in the calls it forwards."""

    def __init__(self, inner: AwsKms) -> None:
        self.inner = inner
        self.seconds = 0.0

    def generate_data_key(self, key_id: str, context: Mapping[str, str]) -> DataKey:
        """Forwarded, timed."""
        started = time.perf_counter()
        try:
            return self.inner.generate_data_key(key_id, context)
        finally:
            self.seconds += time.perf_counter() - started

    def decrypt(self, key_id: str, blob: bytes, context: Mapping[str, str], what: str) -> bytes:
        """Forwarded, timed."""
        started = time.perf_counter()
        try:
            return self.inner.decrypt(key_id, blob, context, what)
        finally:
            self.seconds += time.perf_counter() - started


@dataclass(frozen=True)
class Fixture:
    """One benchmark vault: where it is, the ``bench`` ring and how many slots each ring holds."""

    path: Path
    ring_id: str
    owner_slots: int
    keyring_slots: int


@dataclass(frozen=True)
class Timing:
    """Medians of one unlock method: open_vault, first keyring, both, and the part named ``inner``.

    ``inner`` is Argon2 (one ``stretch`` timed right after each passphrase run) or the time inside
    KMS calls; ``share`` is the median of inner / total over the runs.
    """

    open_s: float
    ring_s: float
    total_s: float
    inner_s: float
    share: float


def fake_aws_environment(tmp: Path, kms_endpoint: str) -> None:
    """Fake credentials and moto's KMS endpoint, for this process (and its children) only."""
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        os.environ.pop(name, None)
    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": "AKIAMLVAULTBENCH",
            "AWS_SECRET_ACCESS_KEY": "mlvault-bench-secret",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": str(tmp / "no-aws-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(tmp / "no-aws-credentials"),
            "AWS_ENDPOINT_URL_KMS": kms_endpoint,
            "MLVAULT_CONFIG_DIR": str(tmp / "client"),
        }
    )


def random_public_key() -> bytes:
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    return X25519PrivateKey.generate().public_key().public_bytes_raw()


def build_vault(root: Path, total: int, kms_key: str, state: ClientState, reader: Any) -> Fixture:
    """A vault with ``total`` key slots (at least :data:`FIXED_SLOTS`); see the module docstring."""
    from vault.keys import slots

    src = root.with_name(root.name + "-src")
    src.mkdir()
    (src / "weights.bin").write_bytes(os.urandom(64 * 1024))
    with vault.init_vault(str(root), passphrase=PASSPHRASE, client_state=state) as v:
        v.push(src, f"{NAMESPACE}/small")
        v.add_recipient(reader, NAMESPACE)
        v.add_kms_slot(kms_key)
        ring_id = v.catalog.keyring_for(NAMESPACE)
        assert ring_id is not None
        owner_key, keyring = v.keys.owner_key(), v.keys.keyring(ring_id)
        fill = max(0, total - FIXED_SLOTS)
        on_owner, on_ring = fill // 2, fill - fill // 2
        for _ in range(on_owner):
            slots.write_x25519_slot(v.backend, v.vault_id, "owner", random_public_key(), owner_key)
        secret = slots.keyring_secret(keyring)
        for _ in range(on_ring):
            slots.write_x25519_slot(v.backend, v.vault_id, ring_id, random_public_key(), secret)
    shutil.rmtree(src)
    return Fixture(root, ring_id, 2 + on_owner, 2 + on_ring)


def build_passphrase_only(root: Path, state: ClientState) -> Fixture:
    """The smallest vault: ``init`` and one push (one passphrase slot, the keyring's owner slot)."""
    src = root.with_name(root.name + "-src")
    src.mkdir()
    (src / "weights.bin").write_bytes(os.urandom(64 * 1024))
    with vault.init_vault(str(root), passphrase=PASSPHRASE, client_state=state) as v:
        v.push(src, f"{NAMESPACE}/small")
        ring_id = v.catalog.keyring_for(NAMESPACE)
        assert ring_id is not None
    shutil.rmtree(src)
    return Fixture(root, ring_id, 1, 1)


def open_and_read_keyring(fixture: Fixture, method: str, state: ClientState) -> tuple[float, float, float]:
    """One fresh open + first keyring by ``method``; (open seconds, keyring seconds, KMS seconds)."""
    kms = TimedKms(AwsKms(KmsOptions()))
    options: dict[str, Any] = {"kms": kms}
    if method == "passphrase":
        options["passphrase"] = PASSPHRASE
    elif method == "identity":
        options["identity"] = lambda: state.identities().load("reader", None)
    else:
        options["use_kms"] = True
    started = time.perf_counter()
    v = vault.open_vault(str(fixture.path), client_state=state, **options)
    opened = time.perf_counter()
    try:
        v.keys.keyring(fixture.ring_id)
        done = time.perf_counter()
    finally:
        v.close()
    if method != "aws-kms" and kms.seconds:
        raise SystemExit(f"the {method} unlock called KMS")
    return opened - started, done - opened, kms.seconds


def argon2_once() -> float:
    started = time.perf_counter()
    stretch(PASSPHRASE, os.urandom(16), RFC9106_LOW_MEMORY)
    return time.perf_counter() - started


def time_method(fixture: Fixture, method: str, state: ClientState, repeat: int) -> Timing:
    open_and_read_keyring(fixture, method, state)  # warm-up: page cache, lazy imports
    runs = []
    for _ in range(repeat):
        open_s, ring_s, kms_s = open_and_read_keyring(fixture, method, state)
        inner = argon2_once() if method == "passphrase" else kms_s
        runs.append((open_s, ring_s, open_s + ring_s, inner))
    return Timing(
        *(statistics.median(r[i] for r in runs) for i in range(4)),
        statistics.median(min(1.0, r[3] / r[2]) for r in runs),
    )


def median_seconds(action: Callable[[], object], repeat: int) -> float:
    action()
    runs = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        runs.append(time.perf_counter() - started)
    return statistics.median(runs)


def warm_kms_unlock(fixture: Fixture, repeat: int) -> float:
    """Median seconds of ``open_with_kms`` over the owner ring on one already-built client."""
    from vault.keys import slots

    with vault.open_vault(str(fixture.path)) as v:  # listing slots needs no key
        stored = slots.scan_ring(v.backend, v.vault_id, "owner")
    kms = AwsKms(KmsOptions())
    return median_seconds(lambda: open_with_kms(stored, kms), repeat)


def write_random(path: Path, size: int) -> None:
    with path.open("wb") as handle:
        left = size
        while left:
            n = min(left, 8 * MIB)
            handle.write(os.urandom(n))
            left -= n


def rekey_row(tmp: Path, size_mib: int) -> None:
    """Push ``size_mib`` MiB of random data, then time ``rekey --reencrypt`` of its namespace."""
    rekey = getattr(vault.Vault, "rekey", None)
    if rekey is None or "reencrypt" not in inspect.signature(rekey).parameters:
        print("rekey --reencrypt: not available in this build")
        return
    data_dir = tmp / "bulk-src"
    data_dir.mkdir()
    size = size_mib * MIB
    write_random(data_dir / "data.bin", size)
    state = ClientState(tmp / "client-rekey")
    with vault.init_vault(str(tmp / "vault-rekey"), passphrase=PASSPHRASE, client_state=state) as v:
        v.keys.owner_key()  # the unlock is not what this row measures
        started = time.perf_counter()
        v.push(data_dir, "bulk/data")
        push_s = time.perf_counter() - started
        started = time.perf_counter()
        v.rekey("bulk", reencrypt=True)
        rekey_s = time.perf_counter() - started
    rate = size / MIB
    print(f"\n{'operation':24s} {'seconds':>9s} {'MiB/s':>9s}   ({size_mib} MiB random data)")
    print(f"{'push':24s} {push_s:9.2f} {rate / push_s:9.1f}")
    print(f"{'rekey --reencrypt':24s} {rekey_s:9.2f} {rate / rekey_s:9.1f}")
    print(f"ratio rekey / push: {rekey_s / push_s:.2f}x (target <= 1.5x)")


def main() -> None:
    """Parse options, start moto, build the vaults, time every unlock and print the tables."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size-mib", type=int, default=1024, help="data for the rekey row (MiB)")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per measurement (median)")
    parser.add_argument("--workdir", type=Path, default=None, help="parent of the temporary directory")
    args = parser.parse_args()

    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    tmp = Path(tempfile.mkdtemp(prefix="mlvault-bench-keys-", dir=args.workdir))
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        fake_aws_environment(tmp, f"http://{host}:{port}")
        admin = boto3.session.Session().client("kms")
        kms_key = admin.create_key(KeySpec="SYMMETRIC_DEFAULT")["KeyMetadata"]["Arn"]
        admin.close()
        state = ClientState(tmp / "client")
        reader = state.identities().create("reader", None, RFC9106_LOW_MEMORY)

        argon2_s = median_seconds(
            lambda: stretch(PASSPHRASE, os.urandom(16), RFC9106_LOW_MEMORY), args.repeat
        )
        print(
            f"passphrase KDF: Argon2id {RFC9106_LOW_MEMORY.describe()} (RFC 9106 low-memory, the default), "
            f"{argon2_s * 1000:.0f} ms per run; {os.cpu_count()} cores; median of {args.repeat} runs"
        )
        print(
            f"\n{'slots (owner+ring)':19s} {'unlock by':11s} {'open_vault':>11s} {'1st keyring':>12s} "
            f"{'total':>10s}  share"
        )
        smallest = build_passphrase_only(tmp / "vault-passphrase-only", state)
        t = time_method(smallest, "passphrase", state, args.repeat)
        print(
            f"{'2 (1+1)':19s} {'passphrase':11s} {t.open_s * 1000:8.1f} ms {t.ring_s * 1000:9.1f} ms "
            f"{t.total_s * 1000:7.1f} ms  Argon2 {t.share:4.0%} ({t.inner_s * 1000:.0f} ms)",
            flush=True,
        )
        warm_kms = []
        for total in SLOT_TOTALS:
            t0 = time.perf_counter()
            fixture = build_vault(tmp / f"vault-{total}", total, kms_key, state, reader)
            setup_s = time.perf_counter() - t0
            owner, ring = fixture.owner_slots, fixture.keyring_slots
            label = f"{owner + ring} ({owner}+{ring})"
            for method in METHODS:
                t = time_method(fixture, method, state, args.repeat)
                part = {"passphrase": "Argon2", "aws-kms": "KMS calls"}.get(method)
                share = f"{part} {t.share:4.0%} ({t.inner_s * 1000:.0f} ms)" if part else ""
                print(
                    f"{label:19s} {method:11s} {t.open_s * 1000:8.1f} ms {t.ring_s * 1000:9.1f} ms "
                    f"{t.total_s * 1000:7.1f} ms  {share}".rstrip(),
                    flush=True,
                )
                label = ""
            warm_kms.append((total, warm_kms_unlock(fixture, args.repeat), setup_s))
        print()
        for total, seconds, setup_s in warm_kms:
            print(
                f"KMS unlock alone (open_with_kms, built client), {total} slots: {seconds * 1000:.1f} ms "
                f"(vault built in {setup_s:.1f} s)"
            )
        print()
        rekey_row(tmp, args.size_mib)
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
