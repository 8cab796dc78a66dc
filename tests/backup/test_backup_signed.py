"""Snapshots signed by the backup job's identity, through the CLI: who may run, what forget, verify and
restore refuse (a snapshot forged with the public recovery key, a stripped signature), the audit rows
of runs, and a restore on a machine with no pins that must be told the admin key, then re-pins it."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from mlvault_cli.main import app
from vault import layout
from vault.backup import snapshot
from vault.backup.job import seal_run_snapshot
from vault.backup.signature import Acceptance
from vault.catalog import open_catalog
from vault.catalog.export import Rows, export_rows
from vault.clientstate import ClientState
from vault.crypto.kdf import KdfParams
from vault.signing import keys
from vault.signing.signers import LocalSigner
from vault.storage.local import LocalBackend

CHEAP_KDF = KdfParams(1, 8, 1)
FAST_KDF = ["--kdf-time", "1", "--kdf-memory-mib", "1", "--kdf-parallelism", "1"]
ADMIN = ("--admin-key", "root")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("MLVAULT_") and not name.startswith(("MLVAULT_TEST_", "MLVAULT_CONFIG_DIR")):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def cli(*args: str, vault_dir: Path | None = None, identity: str | None = None) -> Result:
    env = {"MLVAULT_PASSPHRASE": "pw"}
    if vault_dir is not None:
        env["MLVAULT_VAULT"] = str(vault_dir)
    if identity is not None:
        env["MLVAULT_IDENTITY"] = identity
    return CliRunner().invoke(app, list(args), env=env, catch_exceptions=False)


def ok(result: Result) -> Result:
    assert result.exit_code == 0, (result.exit_code, result.stdout, result.stderr)
    return result


def fails(result: Result, code: int, says: str) -> str:
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("error: ") and says in line, line
    return line


def setup_vault(tmp_path: Path) -> tuple[Path, Path]:
    """A vault with a version, a recovery recipient, an admin-signed policy listing the service
    principal ``backup-job``, and a schedule to a local target."""
    vault_dir, target = tmp_path / "vault", tmp_path / "target"
    ok(cli("init", str(vault_dir), *FAST_KDF))
    state = ClientState.default()
    identities = state.identities()
    for name in ("recovery", "root", "backup-job", "intruder"):
        public = identities.create(name, None, CHEAP_KDF)
        (tmp_path / f"{name}.pub").write_bytes(public.encode())
    ok(cli("keys", "add-recovery", str(tmp_path / "recovery.pub"), vault_dir=vault_dir))
    data = tmp_path / "model"
    data.mkdir()
    (data / "weights.bin").write_bytes(os.urandom(50_000))
    ok(cli("push", str(data), "team/model", "-q", vault_dir=vault_dir))
    ok(
        cli(
            "principal",
            "add",
            "backup-job",
            "--identity",
            str(tmp_path / "backup-job.pub"),
            "--kind",
            "service",
            *ADMIN,
            vault_dir=vault_dir,
        )
    )
    # Backups need admin on '*' (the facade's capability check); '*' wraps no keyring to the job.
    ok(cli("grant", "backup-job", "*", "admin", *ADMIN, vault_dir=vault_dir))
    ok(
        cli(
            "backup",
            "schedule",
            "add",
            "nightly",
            "--cron",
            "@daily",
            "--to",
            str(target),
            "--keep-last",
            "1",
            vault_dir=vault_dir,
        )
    )
    return vault_dir, target


def forge(
    target: Path, vault_id: str, signer: LocalSigner | None, recovery_pub: bytes, rows: Rows | None = None
) -> str:
    """What someone holding the recovery public key and write access to the target can make: a newest
    snapshot that references nothing (so keep-last 1 would forget every real one)."""
    from datetime import UTC, datetime

    rows = rows or {"versions": {"columns": [], "rows": []}}
    sid, listing, sealed = seal_run_snapshot(
        vault_id, "nightly", datetime.now(UTC), rows, {layout.CONFIG: 1}, (0, 0), [recovery_pub], signer
    )
    backend = LocalBackend(target)
    backend.put(layout.snapshot_objects_key(sid), listing)
    backend.put(layout.snapshot_key(sid), sealed)
    return sid


def test_only_the_service_principal_signs_and_forgeries_are_refused(tmp_path: Path) -> None:
    vault_dir, target = setup_vault(tmp_path)
    fails(cli("backup", "run", "nightly", vault_dir=vault_dir), 8, "--identity")
    fails(cli("backup", "run", "--due", vault_dir=vault_dir), 8, "backup-job")
    # An identity the policy does not list is refused: by the capability check when the vault opens
    # (exit 15), else by the job check (exit 8; a listed user principal is refused there too, see
    # test_which_jobs_may_run). Either way before anything is written.
    intruder_run = cli("backup", "run", "nightly", vault_dir=vault_dir, identity="intruder")
    assert intruder_run.exit_code in (8, 15) and "principal" in intruder_run.stderr, intruder_run.stderr
    assert not target.exists() or not snapshot.snapshot_ids(LocalBackend(target))
    done = ok(cli("backup", "run", "nightly", vault_dir=vault_dir, identity="backup-job"))
    assert "nightly: success" in done.stdout and "not signed" not in done.stderr
    verified = ok(cli("backup", "verify", "nightly", vault_dir=vault_dir))
    assert "signed by: service principal backup-job" in verified.stdout

    # The audit log records the run, named by the job's identity, and still verifies.
    rows = json.loads(ok(cli("audit", "ls", "--action", "backup", "--json", vault_dir=vault_dir)).stdout)
    assert [(r["principal"], r["target"], r["outcome"]) for r in rows] == [("backup-job", "nightly", "ok")]
    assert rows[0]["details"]["snapshot"] in snapshot.snapshot_ids(LocalBackend(target))
    ok(cli("audit", "verify", vault_dir=vault_dir))

    vault_id = json.loads((vault_dir / layout.CONFIG).read_bytes())["vault_id"]
    recovery_pub = ClientState.default().identities().public("recovery").x25519_public
    intruder = LocalSigner(ClientState.default().identities().load("intruder", None).ecdsa_private)
    before = sorted(LocalBackend(target).list())
    catalog = open_catalog(f"sqlite:///{vault_dir / layout.CATALOG_FILE}")
    try:
        real_rows = export_rows(catalog)  # the real, admin-signed policy: only the signer is wrong
    finally:
        catalog.close()
    forged = forge(target, vault_id, intruder, recovery_pub, real_rows)
    fails(cli("backup", "verify", "nightly", vault_dir=vault_dir), 5, "neither a service principal")
    fails(cli("backup", "forget", "nightly", vault_dir=vault_dir), 5, "nothing was deleted")
    assert set(before) <= set(LocalBackend(target).list())  # forget deleted nothing
    restored = cli(
        "backup", "restore", "--from", str(target), "--to", str(tmp_path / "r"), "--recovery-key", "recovery"
    )
    fails(restored, 5, "neither a service principal")
    assert not (tmp_path / "r" / layout.CONFIG).exists()

    # Stripped of any signature: a downgrade the policy's service principal rules out.
    for key in (layout.snapshot_key(forged), layout.snapshot_objects_key(forged)):
        (target / key).chmod(0o644)
        (target / key).unlink()
    forge(target, vault_id, None, recovery_pub)
    fails(cli("backup", "verify", "nightly", vault_dir=vault_dir), 5, "is not signed")


def test_an_unrecordable_run_fails(tmp_path: Path) -> None:
    vault_dir, _ = setup_vault(tmp_path)
    # A trigger that refuses every audit insert: the catalog cannot record the run.
    import sqlite3

    with sqlite3.connect(vault_dir / layout.CATALOG_FILE) as db:
        db.execute(
            "CREATE TRIGGER no_audit BEFORE INSERT ON audit_log BEGIN SELECT RAISE(ABORT, 'read-only'); END"
        )
    result = cli("backup", "run", "nightly", vault_dir=vault_dir, identity="backup-job")
    assert result.exit_code == 17, (result.stdout, result.stderr)
    assert "could not be recorded in the audit log" in result.stderr
    shown = json.loads(ok(cli("backup", "schedule", "show", "nightly", "--json", vault_dir=vault_dir)).stdout)
    assert shown["runs"][0]["outcome"] == "failed"


def test_restore_without_pins_needs_the_admin_key_then_repins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    vault_dir, target = setup_vault(tmp_path)
    ok(cli("backup", "run", "nightly", vault_dir=vault_dir, identity="backup-job"))
    state = ClientState.default()
    admin = keys.fingerprint(state.identities().load("root", None).ecdsa_private.public_key())
    vault_id = json.loads((vault_dir / layout.CONFIG).read_bytes())["vault_id"]
    shutil.rmtree(vault_dir)

    # A fresh machine: only the recovery identity, no pins.
    fresh = tmp_path / "fresh-config"
    (fresh / "identities").mkdir(parents=True)
    shutil.copy(state.root / "identities" / "recovery.id", fresh / "identities" / "recovery.id")
    monkeypatch.setenv("MLVAULT_CONFIG_DIR", str(fresh))
    restored = tmp_path / "restored"
    args = ("backup", "restore", "--from", str(target), "--to", str(restored), "--recovery-key", "recovery")
    line = fails(cli(*args), 13, "--admin-key-fingerprint")
    assert admin in line and not (restored / layout.CONFIG).exists()
    fails(cli(*args, "--admin-key-fingerprint", "ab" * 32), 13, "not a pinned admin key")
    done = ok(cli(*args, "--admin-key-fingerprint", admin))
    assert "signed by service principal backup-job" in done.stdout

    pins = json.loads((fresh / "access-pins.json").read_bytes())["vaults"][vault_id]
    assert pins["admins"] == [admin] and pins["policy_serial"] == 2  # principal add, grant
    # The restored vault opens against the re-pinned admin key, its audit log verifies, and its
    # next backup (by the same job) is accepted by the restored policy.
    listed = json.loads(ok(cli("principal", "ls", "--json", vault_dir=restored)).stdout)
    assert [p["name"] for p in listed] == ["backup-job"]
    ok(cli("audit", "verify", vault_dir=restored))
    assert Acceptance.of([admin]).signer_name(admin) == "the admin key"


def test_which_jobs_may_run() -> None:
    from datetime import UTC, datetime

    from vault.errors import ConfigurationError

    now = datetime(2025, 1, 1, tzinfo=UTC)
    job, other = (LocalSigner(keys.generate_private_key()) for _ in range(2))

    class P:
        def __init__(
            self, name: str, kind: str, signer: LocalSigner, removed: datetime | None = None
        ) -> None:
            self.expires = None
            self.name, self.kind, self.signing_fingerprint, self.removed_at = (
                name,
                kind,
                signer.fingerprint(),
                removed,
            )

    nobody = Acceptance(frozenset())
    assert nobody.check_job(None, now) is None  # no service principal: unsigned, with a warning
    with pytest.raises(ConfigurationError, match="not a service principal"):
        nobody.check_job(job, now)
    listed = Acceptance.of([], [P("backup-job", "service", job), P("alice", "user", other)])
    assert listed.check_job(job, now) == "service principal backup-job"
    with pytest.raises(ConfigurationError, match="--identity"):
        listed.check_job(None, now)
    with pytest.raises(ConfigurationError, match="not a service principal"):
        listed.check_job(other, now)  # a user principal signs no snapshot
    removed = Acceptance.of([], [P("backup-job", "service", job, now)])
    with pytest.raises(ConfigurationError):
        removed.check_job(job, now)
    assert Acceptance.of([other.fingerprint()]).check_job(other, now) == "the admin key"
