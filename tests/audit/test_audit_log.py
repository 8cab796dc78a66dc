"""The audit log's storage: the serialized appender, fail-closed, and signed checkpoints in storage.

PostgreSQL tests run against a fresh database (``postgres_url``; skipped without one): eight
processes append at once and the chain stays one valid chain; a role without INSERT on the table
makes every append fail with AuditUnavailableError.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from vault import layout
from vault.audit import chain
from vault.audit.checkpoint import Checkpoint, SignedCheckpoint
from vault.audit.log import CheckpointKeyVerifier, CheckpointSigner, make_checkpoint
from vault.audit.service import AuditService
from vault.catalog import Catalog, open_catalog
from vault.catalog.audit import PendingRow
from vault.errors import (
    AuditUnavailableError,
    IntegrityError,
    NotFoundError,
    SignatureInvalidError,
    UntrustedSignerError,
)
from vault.signing.keys import generate_private_key
from vault.storage.memory import MemoryBackend

VAULT_ID = bytes(range(16))
T0 = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)


def service(catalog: Catalog, backend: MemoryBackend | None = None, every: int = 1000) -> AuditService:
    return AuditService(
        catalog,
        backend or MemoryBackend(),
        VAULT_ID,
        principal="alice@host",
        identity=lambda: None,
        clock=lambda: T0,
        every=every,
    )


def _append_many(url: str, worker: int, count: int) -> None:
    catalog = open_catalog(url)
    try:
        link = lambda prev, row: chain.append(prev, row, VAULT_ID)  # noqa: E731
        for i in range(count):
            row = PendingRow(T0, f"w{worker}", "pull", f"team/m@v{i}", "ok", {"i": i})
            catalog.append_audit(link, [row])
    finally:
        catalog.close()


def test_rows_chain_and_checkpoints_go_to_storage_every_n(tmp_path: Path) -> None:
    catalog = open_catalog(f"sqlite:///{tmp_path / 'c.sqlite'}")
    backend = MemoryBackend()
    log = service(catalog, backend, every=10)
    for i in range(25):
        log.record("pull", f"team/m@v{i}", details={"bytes": i})
    assert not list(backend.list(layout.AUDIT_PREFIX))  # reads never write storage
    log.changed("push", "team/m@v26")
    seqs = sorted(layout.parse_audit_checkpoint_key(k) for k in backend.list(layout.AUDIT_PREFIX))
    assert seqs == [10, 20, 26]
    result = log.verify()
    assert result.report.ok and result.report.checkpoints == 3 and result.signers == ("unsigned",)
    catalog.close()


def test_a_checkpoint_key_sorts_and_parses() -> None:
    keys = [layout.audit_checkpoint_key(s) for s in (9, 10, 1000, 2**62)]
    assert keys == sorted(keys)
    assert [layout.parse_audit_checkpoint_key(k) for k in keys] == [9, 10, 1000, 2**62]
    assert layout.parse_audit_checkpoint_key("audit/12") is None


def test_checkpoints_signed_with_an_identity_key_verify_and_a_flip_is_refused() -> None:
    signer = CheckpointSigner(generate_private_key())
    cp = make_checkpoint(VAULT_ID, Checkpoint(7, bytes(32)), T0, signer)
    assert cp.signer.startswith("p256:") and cp.signature
    CheckpointKeyVerifier().verify_checkpoint(cp)
    forged = dataclasses.replace(cp, checkpoint=Checkpoint(7, b"\x01" * 32))
    with pytest.raises(SignatureInvalidError):
        CheckpointKeyVerifier().verify_checkpoint(forged)
    with pytest.raises(SignatureInvalidError):
        CheckpointKeyVerifier().verify_checkpoint(
            SignedCheckpoint(VAULT_ID, cp.checkpoint, T0, "unsigned", b"x")
        )


def test_a_damaged_checkpoint_object_fails_verification(tmp_path: Path) -> None:
    catalog = open_catalog(f"sqlite:///{tmp_path / 'c.sqlite'}")
    backend = MemoryBackend()
    log = service(catalog, backend)
    log.changed("push", "team/m@v1")
    backend.put(layout.audit_checkpoint_key(5), b"MLVA garbage")
    with pytest.raises(IntegrityError, match="damaged"):
        log.verify()
    catalog.close()


def test_eight_processes_on_postgresql_keep_one_chain(postgres_url: str) -> None:
    open_catalog(postgres_url).close()  # migrate once
    ctx = multiprocessing.get_context("spawn")
    workers = [ctx.Process(target=_append_many, args=(postgres_url, w, 40)) for w in range(8)]
    for p in workers:
        p.start()
    for p in workers:
        p.join(120)
        assert p.exitcode == 0
    catalog = open_catalog(postgres_url)
    rows = list(catalog.audit_stored_rows())
    assert [s.row.seq for s in rows] == list(range(1, 321))
    assert {s.row.principal for s in rows} == {f"w{w}" for w in range(8)}
    report = chain.verify(rows, [], vault_id=VAULT_ID, verifier=CheckpointKeyVerifier())
    assert report.ok, report.reason
    catalog.close()


def test_postgresql_role_without_insert_fails_closed(postgres_url: str) -> None:
    catalog = open_catalog(postgres_url)
    service(catalog).record("pull", "team/m@v1")
    catalog.close()
    role = "mlvault_audit_reader"
    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"DROP ROLE IF EXISTS {role}"))
        conn.execute(text(f"CREATE ROLE {role} LOGIN PASSWORD 'pw'"))
        conn.execute(text(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}"))
        conn.execute(text(f"REVOKE INSERT ON audit_log FROM {role}"))
    try:
        limited = make_url(postgres_url).set(username=role, password="pw")
        catalog = open_catalog(limited.render_as_string(hide_password=False))
        log = service(catalog)
        with pytest.raises(AuditUnavailableError, match=r"cannot write the audit log.*refused"):
            log.record("pull", "team/m@v2")
        assert [s.row.seq for s in catalog.audit_stored_rows()] == [1]
        catalog.close()
    finally:
        with admin.connect() as conn:
            conn.execute(text(f"REASSIGN OWNED BY {role} TO CURRENT_USER"))
            conn.execute(text(f"DROP OWNED BY {role}"))
            conn.execute(text(f"DROP ROLE {role}"))
        admin.dispose()


def test_rows_read_back_as_written(tmp_path: Path) -> None:
    catalog = open_catalog(f"sqlite:///{tmp_path / 'c.sqlite'}")
    log = service(catalog)
    written = log.record("push", "team/ü@v1", details={"tags": ["prod"], "n": None, "ok": True})
    assert list(catalog.audit_stored_rows()) == [written]
    assert log.rows(since=timedelta(days=1), artifact="team/ü") == [written.row]
    catalog.close()


def test_nested_failure_contexts_record_one_row(tmp_path: Path) -> None:
    """``verify`` around a ``resolve`` that refuses a provenance record: one failed row, the inner one."""
    catalog = open_catalog(f"sqlite:///{tmp_path / 'c.sqlite'}")
    log = service(catalog)
    outer, inner = log.failures("verify", "team/m"), log.failures("verify", "team/m@v1")
    with pytest.raises(UntrustedSignerError), outer, inner:
        raise UntrustedSignerError("no provenance record")
    with pytest.raises(NotFoundError), log.failures("pull", "team/m@v9"):
        raise NotFoundError("no version 9")
    assert [(r.action, r.target, r.outcome, r.details) for r in log.rows()] == [
        ("verify", "team/m@v1", "failed", {"during": "verify", "error": "UntrustedSignerError"}),
        ("pull", "team/m@v9", "failed", {"error": "NotFoundError"}),
    ]
    catalog.close()
