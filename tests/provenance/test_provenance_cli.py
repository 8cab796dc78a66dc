"""Provenance records through the CLI: pushes and tag moves under a policy are signed, readers refuse
(exit 13) what no valid record vouches for — catalog-writer attacks with plain SQL included — and an
admin's ``mlvault attest`` fixes a refused version."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from typer.testing import CliRunner, Result

import vault
from mlvault_cli.main import app
from vault import layout
from vault.access.provenance import PUSH, Record, sign_record
from vault.clientstate import ClientState
from vault.crypto.kdf import KdfParams
from vault.signing.signers import LocalSigner
from vault.storage import open_backend

CHEAP_KDF = KdfParams(time_cost=1, memory_kib=8, parallelism=1)
PASSPHRASE = "correct horse battery staple"
ADMIN = ("--admin-key", "root")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("MLVAULT_") and not name.startswith(("MLVAULT_TEST_", "MLVAULT_CONFIG_DIR")):
            monkeypatch.delenv(name)


class Env:
    def __init__(self, tmp_path: Path, catalog_url: str | None) -> None:
        self.tmp = tmp_path
        self.path = tmp_path / "v"
        self.src = tmp_path / "src"
        self.src.mkdir()
        (self.src / "f").write_bytes(b"model bytes v1")
        with vault.init_vault(
            str(self.path), passphrase=PASSPHRASE, kdf=CHEAP_KDF, catalog_url=catalog_url
        ) as v:
            v.push(self.src, "team/model", tags=["prod"])  # before any policy: listed by the first one
            self.vault_id = v.config.vault_id
            self.url = str(v.catalog.engine.url.render_as_string(hide_password=False))
        state = ClientState.default()
        state.identities().create("root", None, CHEAP_KDF)  # the admin key: an identity's signing key
        for name in ("alice", "bob"):
            public = state.identities().create(name, None, CHEAP_KDF)
            (tmp_path / f"{name}.pub").write_bytes(public.encode())
        self.env = {"MLVAULT_PASSPHRASE": PASSPHRASE, "MLVAULT_VAULT": str(self.path)}
        if catalog_url:
            self.env["MLVAULT_CATALOG"] = catalog_url
        self.n = 0

    def run(self, *args: str) -> Result:
        return CliRunner().invoke(app, list(args), env=self.env, catch_exceptions=False)

    def ok(self, *args: str) -> Result:
        result = self.run(*args)
        assert result.exit_code == 0, (args, result.exit_code, result.stdout, result.stderr)
        return result

    def fails(self, code: int, says: str, *args: str) -> str:
        result = self.run(*args)
        assert result.exit_code == code, (args, result.exit_code, result.stdout, result.stderr)
        line = result.stderr.strip().splitlines()[-1]
        assert line.startswith("error: ") and says in line, line
        return line

    def pull(self, ref: str) -> Result:
        self.n += 1
        return self.run("pull", "--no-verify", ref, str(self.tmp / f"out{self.n}"))

    def pulls(self, ref: str) -> None:
        result = self.pull(ref)
        assert result.exit_code == 0, (ref, result.exit_code, result.stderr)

    def refused(self, ref: str, says: str) -> None:
        result = self.pull(ref)
        assert result.exit_code == 13, (ref, result.exit_code, result.stdout, result.stderr)
        line = result.stderr.strip().splitlines()[-1]
        assert line.startswith("error: ") and says in line, line

    def push_as(self, who: str, content: bytes, *extra: str) -> None:
        (self.src / "f").write_bytes(content)
        self.ok("--identity", who, "push", str(self.src), "team/model", *extra)

    def sql(self, statement: str, **params: object) -> None:
        engine: Engine = create_engine(self.url)
        try:
            with engine.begin() as conn:
                conn.execute(text(statement), params)
        finally:
            engine.dispose()

    def insert_version_like(self, source: str, new_id: str, number: int, who: str) -> None:
        """A catalog writer's version row: a copy of ``source`` under a new id and number."""
        self.sql(
            "INSERT INTO versions (id, artifact_id, number, digest, size, file_count, root, ring_id,"
            " created_by, created_at) SELECT :id, artifact_id, :n, digest, size, file_count, root,"
            " ring_id, :who, created_at FROM versions WHERE id = :source",
            id=new_id,
            n=number,
            who=who,
            source=source,
        )

    def version_id(self, number: int) -> str:
        with vault.open_vault(
            str(self.path), passphrase=PASSPHRASE.encode(), catalog_url=self.env.get("MLVAULT_CATALOG")
        ) as v:
            return v.catalog.resolve("team/model", number=number).id

    def backend_keys(self, prefix: str) -> list[str]:
        backend = open_backend(str(self.path))
        try:
            return sorted(backend.list(prefix))
        finally:
            backend.close()

    def delete(self, key: str) -> None:
        os.remove(self.path / key)


@pytest.fixture
def env(tmp_path: Path, catalog_url: str | None) -> Iterator[Env]:
    e = Env(tmp_path, catalog_url)
    e.ok("principal", "add", "alice", "--identity", str(tmp_path / "alice.pub"), *ADMIN)
    e.ok("principal", "add", "bob", "--identity", str(tmp_path / "bob.pub"), *ADMIN)
    e.ok("grant", "alice", "team/*", "read,push,tag", *ADMIN)
    e.ok("grant", "bob", "team/*", "read", *ADMIN)
    yield e


def test_pushes_and_tag_moves_under_a_policy_carry_records_and_pull(env: Env) -> None:
    env.pulls("team/model@prod")  # pushed and tagged before the first policy: listed by it
    env.pulls("team/model@v1")
    env.push_as("alice", b"v2 by alice")
    assert len(env.backend_keys(layout.version_records_prefix(env.version_id(2)))) == 1
    env.pulls("team/model@v2")
    env.ok("--identity", "alice", "tag", "team/model@v2", "prod")
    env.pulls("team/model@prod")
    assert len(env.backend_keys(layout.TAG_RECORDS_PREFIX)) == 1
    env.push_as("alice", b"v3 tagged at push", "--tag", "staging")
    env.pulls("team/model@staging")


def test_sql_attacks_are_refused(env: Env) -> None:
    env.push_as("alice", b"v2 by alice")
    v2 = env.version_id(2)
    # a version row inserted by plain SQL: no record vouches for it
    forged = "f0" * 16
    env.insert_version_like(v2, forged, 3, "mallory")
    env.refused("team/model@v3", "no provenance record")
    env.fails(13, "no provenance record", "show", "team/model@v3")  # show and verify resolve the same way
    env.fails(13, "no provenance record", "verify", "team/model@v3")
    # a tag moved by SQL to another version: its newest signed record names the old one
    env.ok("--identity", "alice", "tag", "team/model@v2", "prod")
    env.sql("UPDATE tags SET version_id = :v1 WHERE name = 'prod'", v1=env.version_id(1))
    env.refused("team/model@prod", "moved outside a signed record")
    env.ok("--identity", "alice", "tag", "team/model@v1", "prod")  # a signed move puts it right
    env.pulls("team/model@prod")
    # the record object deleted from storage: the version is refused, until an admin re-attests it
    (key,) = env.backend_keys(layout.version_records_prefix(v2))
    env.delete(key)
    env.refused("team/model@v2", "no provenance record")
    attested = env.ok("attest", "team/model@v2", *ADMIN)
    assert "team/model@v2 attested" in attested.stdout
    env.pulls("team/model@v2")
    # a principal without admin may not attest
    env.fails(15, "permission denied", "--identity", "bob", "attest", "team/model@v3")


def test_a_record_by_a_principal_without_push_is_refused(env: Env) -> None:
    env.push_as("alice", b"v2 by alice")
    v2 = env.version_id(2)
    (key,) = env.backend_keys(layout.version_records_prefix(v2))
    env.delete(key)
    # bob (read only) signs a record for it with his own identity: valid signature, no capability
    bob = ClientState.default().identities().load("bob", None)
    signer = LocalSigner(bob.ecdsa_private)
    _plant_record(env, signer, _principal_id(env, "bob"), v2, 2, serial=4)
    env.refused("team/model@v2", "does not hold push")


def test_revoked_pushers_earlier_versions_stay_valid_and_later_records_are_refused(env: Env) -> None:
    env.push_as("alice", b"v2 by alice")
    env.ok("--identity", "alice", "tag", "team/model@v2", "prod")
    env.ok("revoke", "alice", "team/*", "push,tag", *ADMIN)
    env.pulls("team/model@v2")  # kept by the policy that revoked
    env.pulls("team/model@prod")
    # alice cannot push any more (the gate says so first) ...
    (env.src / "f").write_bytes(b"v3 after revoke")
    env.fails(15, "permission denied", "--identity", "alice", "push", str(env.src), "team/model")
    # ... and a record she signs anyway, naming the old serial under which she held push, is refused
    v2 = env.version_id(2)
    forged = "f1" * 16
    env.insert_version_like(v2, forged, 3, "alice")
    alice = ClientState.default().identities().load("alice", None)
    _plant_record(env, LocalSigner(alice.ecdsa_private), _principal_id(env, "alice"), forged, 3, serial=3)
    env.refused("team/model@v3", "does not hold push")
    # removing her entirely keeps her earlier records too
    env.ok("principal", "rm", "alice", *ADMIN)
    env.pulls("team/model@v2")


def _principal_id(env: Env, name: str) -> str:
    import json

    listed = json.loads(env.ok("principal", "ls", "--json").stdout)
    return next(p["id"] for p in listed if p["name"] == name)


def _plant_record(
    env: Env, signer: LocalSigner, principal: str, version_id: str, number: int, *, serial: int
) -> None:
    engine = create_engine(env.url)
    try:
        with engine.connect() as conn:
            digest = conn.scalar(text("SELECT digest FROM versions WHERE id = :id"), {"id": version_id})
    finally:
        engine.dispose()
    record = Record(
        PUSH,
        env.vault_id,
        "team/model",
        version_id,
        principal,
        signer.fingerprint(),
        serial,
        dt.datetime(2027, 1, 1, tzinfo=dt.UTC),
        number=number,
        digest=str(digest),
    )
    document = sign_record(record, signer)
    from vault.access.provenance import record_digest

    backend = open_backend(str(env.path))
    try:
        backend.put(layout.version_record_key(version_id, record_digest(document)), document)
    finally:
        backend.close()


def test_a_pre_policy_tag_moved_by_sql_is_refused(env: Env) -> None:
    env.push_as("alice", b"v2 by alice")
    env.sql("UPDATE tags SET version_id = :v2 WHERE name = 'prod'", v2=env.version_id(2))
    env.refused("team/model@prod", "no provenance record")  # the first policy listed prod -> v1
    env.pulls("team/model@v2")


def test_without_a_policy_nothing_is_written_or_required(tmp_path: Path) -> None:
    e = Env(tmp_path, None)
    (e.src / "f").write_bytes(b"v2")
    e.ok("push", str(e.src), "team/model", "--tag", "prod")
    e.ok("tag", "team/model@v1", "prod")
    e.pulls("team/model@prod")
    assert e.backend_keys(layout.RECORDS_PREFIX) == []
    e.fails(8, "no access policy", "attest", "team/model@v1")


def test_the_owner_signs_as_root_admin(env: Env) -> None:
    (env.src / "f").write_bytes(b"v2 by the owner")
    env.ok("push", str(env.src), "team/model", "--tag", "owner-tag")  # no identity: the vault owner
    env.pulls("team/model@owner-tag")
    env.ok("tag", "team/model@v1", "owner-tag")
    env.pulls("team/model@owner-tag")
    env.ok("attest", "team/model@v1")  # the owner is admin
