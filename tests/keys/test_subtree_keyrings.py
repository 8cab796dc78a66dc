"""Namespaces with a keyring of their own (``namespace create team/secret --own-keyring``): pushes under
them use it, a reader of ``team`` cannot open them (exit 4), and neither a catalog writer (rows
deleted, inserted or redirected with plain SQL) nor a storage writer (record deleted or planted) can
make a push fall back to the broader keyring: every such case is refused (exit 5) or re-indexed
from the owner-signed record. The record format: every byte flipped, truncations, trailing data.
SQLite and PostgreSQL catalogs, real local storage, cheap KDF."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from keyhelpers import CHEAP_KDF, PASSPHRASE, load_identity, new_identity
from sqlalchemy import Executable, create_engine, delete, insert, update
from typer.testing import CliRunner

import vault
from mlvault_cli.main import app
from vault import layout
from vault.catalog.schema import keyrings
from vault.clientstate import ClientState
from vault.errors import AuthenticationError, ConflictError, IntegrityError, UsageError
from vault.keys import subtrees
from vault.signing.keys import generate_private_key
from vault.signing.signers import LocalSigner
from vault.storage import open_backend


def source(tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"src-{name}"
    path.mkdir()
    (path / "w.bin").write_bytes(name.encode() * 500)
    return path


@pytest.fixture
def path(tmp_path: Path, catalog_url: str | None) -> Path:
    path = tmp_path / "v"
    with vault.init_vault(
        str(path),
        passphrase=PASSPHRASE,
        kdf=CHEAP_KDF,
        catalog_url=catalog_url,
        client_state=ClientState.default(),
    ) as v:
        v.push(source(tmp_path, "public"), "team/public/model")
        subtrees.create_subtree(v.keys, v.backend, v.catalog, "team/secret")
        v.push(source(tmp_path, "secret"), "team/secret/model")
    return path


@pytest.fixture
def owner(path: Path, catalog_url: str | None) -> Callable[[], vault.Vault]:
    return lambda: vault.open_vault(
        str(path), passphrase=PASSPHRASE, catalog_url=catalog_url, client_state=ClientState.default()
    )


def as_catalog_writer(v: vault.Vault, *statements: Executable) -> None:
    """Plain SQL on the catalog, on a connection of its own (what a catalog writer has)."""
    engine = create_engine(v.catalog.engine.url)
    try:
        with engine.begin() as conn:
            for statement in statements:
                conn.execute(statement)
    finally:
        engine.dispose()


def ring_of(v: vault.Vault, ref: str) -> str:
    return v.resolve(ref).ring_id


def test_pushes_under_the_namespace_use_its_keyring_and_team_readers_cannot_open_it(
    path: Path, tmp_path: Path, owner: Callable[[], vault.Vault], catalog_url: str | None
) -> None:
    with owner() as v:
        secret_ring = v.catalog.keyring_for("team/secret")
        assert secret_ring is not None and secret_ring != v.catalog.keyring_for("team")
        assert ring_of(v, "team/secret/model") == secret_ring
        assert ring_of(v, "team/public/model") == v.catalog.keyring_for("team")
        v.push(source(tmp_path, "deeper"), "team/secret/x/model")  # a deeper artifact: the same keyring
        assert ring_of(v, "team/secret/x/model") == secret_ring
        v.add_recipient(new_identity("alice"), "team")
    with vault.open_vault(str(path), catalog_url=catalog_url, identity=lambda: load_identity("alice")) as v:
        v.pull("team/public/model", tmp_path / "out-public")
        with pytest.raises(AuthenticationError, match="no key slot you can open"):
            v.pull("team/secret/model", tmp_path / "out-secret")


def test_a_lost_catalog_row_is_never_a_fallback(owner: Callable[[], vault.Vault], tmp_path: Path) -> None:
    with owner() as v:
        ring = v.catalog.keyring_for("team/secret")
        empty = subtrees.create_subtree(v.keys, v.backend, v.catalog, "team/empty")
        as_catalog_writer(  # a catalog writer renames one row (versions refer to it) and deletes another
            v,
            update(keyrings).where(keyrings.c.namespace == "team/secret").values(namespace="team/renamed"),
            delete(keyrings).where(keyrings.c.namespace == "team/empty"),
        )
    with owner() as v:
        v.push(source(tmp_path, "again"), "team/secret/model")
        assert ring_of(v, "team/secret/model") == ring
        v.push(source(tmp_path, "first"), "team/empty/model")
        assert ring_of(v, "team/empty/model") == empty
        assert v.catalog.keyring_for("team/empty") == empty  # re-indexed from the record


def test_a_redirected_or_inserted_catalog_row_is_refused(
    owner: Callable[[], vault.Vault], tmp_path: Path
) -> None:
    with owner() as v:
        as_catalog_writer(
            v,
            update(keyrings).where(keyrings.c.namespace == "team/secret").values(namespace="team/renamed"),
            insert(keyrings).values(ring_id="ab" * 16, namespace="team/secret", created_at=_now()),
            insert(keyrings).values(ring_id="cd" * 16, namespace="team/forged", created_at=_now()),
        )
    with owner() as v:
        with pytest.raises(IntegrityError, match="its signed record"):
            v.push(source(tmp_path, "x"), "team/secret/model")
        with pytest.raises(IntegrityError, match="signed record is missing"):
            v.push(source(tmp_path, "y"), "team/forged/model")
        with pytest.raises(IntegrityError, match="signed record is missing"):
            v.add_recipient(new_identity("bob"), "team/forged")


def test_a_deleted_record_is_refused_and_a_planted_one_too(
    path: Path, owner: Callable[[], vault.Vault], tmp_path: Path
) -> None:
    backend = open_backend(str(path))
    with owner() as v:
        vid, team = v.vault_id, v.catalog.keyring_for("team")
    assert team is not None
    backend.delete(subtrees.record_key(vid, "team/secret"))
    with owner() as v, pytest.raises(IntegrityError, match="missing from storage"):
        v.push(source(tmp_path, "x"), "team/secret/model")
    # A storage writer plants a record of its own: signed, but not by the owner identity.
    rogue = LocalSigner(generate_private_key())
    backend.put(
        subtrees.record_key(vid, "team/other"), subtrees.encode(vid, "team/other", bytes.fromhex(team), rogue)
    )
    with owner() as v, pytest.raises(IntegrityError, match=r"not by the vault's owner identity|not pinned"):
        v.push(source(tmp_path, "y"), "team/other/model")


def test_create_refuses_what_it_cannot_do_safely(owner: Callable[[], vault.Vault]) -> None:
    with owner() as v:
        with pytest.raises(ConflictError, match="already has a keyring"):
            subtrees.create_subtree(v.keys, v.backend, v.catalog, "team/secret")
        with pytest.raises(ConflictError, match="already holds 1 artifact"):
            subtrees.create_subtree(v.keys, v.backend, v.catalog, "team/public")
        for bad in ("team", "team/../x", "a/b/c/d/e/f/g/h"):
            with pytest.raises(UsageError):
                subtrees.create_subtree(v.keys, v.backend, v.catalog, bad)


def test_cli_namespace_create(path: Path, tmp_path: Path) -> None:
    env = {"MLVAULT_PASSPHRASE": PASSPHRASE, "MLVAULT_VAULT": str(path)}
    runner = CliRunner()
    made = runner.invoke(app, ["namespace", "create", "team/vision", "--own-keyring"], env=env)
    assert made.exit_code == 0, made.output
    assert "namespace team/vision has keyring" in made.stdout
    again = runner.invoke(app, ["namespace", "create", "team/vision", "--own-keyring"], env=env)
    assert again.exit_code == 9 and "already has a keyring" in again.stderr
    bare = runner.invoke(app, ["namespace", "create", "team/other"], env=env)
    assert bare.exit_code == 2 and "--own-keyring" in bare.stderr
    top = runner.invoke(app, ["namespace", "create", "research", "--own-keyring"], env=env)
    assert top.exit_code == 2 and "top-level" in top.stderr


def test_record_format_refuses_every_damage() -> None:
    vid, ring = bytes(range(16)), bytes(range(16, 32))
    signer = LocalSigner(generate_private_key())
    data = subtrees.encode(vid, "team/secret", ring, signer)
    record = subtrees.decode(data, vid, "team/secret")
    assert (record.ring_id, record.signer) == (ring.hex(), signer.fingerprint())
    for i in range(len(data)):
        bad = bytearray(data)
        bad[i] ^= 0x01
        with pytest.raises(IntegrityError):
            subtrees.decode(bytes(bad), vid, "team/secret")
    for n in range(len(data)):
        with pytest.raises(IntegrityError):
            subtrees.decode(data[:n], vid, "team/secret")
    with pytest.raises(IntegrityError, match="trailing"):
        subtrees.decode(data + b"\0", vid, "team/secret")
    with pytest.raises(IntegrityError, match="another vault or namespace"):
        subtrees.decode(data, vid, "team/other")
    with pytest.raises(IntegrityError, match="another vault or namespace"):
        subtrees.decode(data, bytes(16), "team/secret")
    assert layout.parse_namespace_keyring_key(subtrees.record_key(vid, "team/secret")) is not None


def _now() -> object:
    import datetime as dt

    return dt.datetime.now(dt.UTC)


def test_a_recipient_of_the_namespace_reads_it_and_nothing_else_and_rekey_works(
    path: Path, tmp_path: Path, owner: Callable[[], vault.Vault], catalog_url: str | None
) -> None:
    with owner() as v:
        v.add_recipient(new_identity("carol"), "team/secret")
        report = v.rekey("team/secret")
        assert report.rekey.ring_id == v.catalog.keyring_for("team/secret")
        v.push(source(tmp_path, "after"), "team/secret/model")  # the new epoch
        with pytest.raises(UsageError, match="no keyring of its own"):
            v.add_recipient(new_identity("dave"), "team/vision")
    with vault.open_vault(str(path), catalog_url=catalog_url, identity=lambda: load_identity("carol")) as v:
        v.pull("team/secret/model@v1", tmp_path / "carol-v1")
        v.pull("team/secret/model@v2", tmp_path / "carol-v2")
        with pytest.raises(AuthenticationError, match="no key slot you can open"):
            v.pull("team/public/model", tmp_path / "carol-public")


def test_a_read_grant_on_the_namespace_is_enforced_by_its_keyring(
    path: Path, tmp_path: Path, owner: Callable[[], vault.Vault], catalog_url: str | None
) -> None:
    from vault.access.patterns import Capability
    from vault.keys.owner_identity import owner_signer

    read = frozenset({Capability.READ, Capability.LIST})
    with owner() as v:
        admin, secret = owner_signer(v.keys, v.backend), v.catalog.keyring_for("team/secret")
        access = v.access(ClientState.default())
        access.add_principal("erin", new_identity("erin"), admin)
        change = access.grant("erin", "team/secret/*", read, admin).key_changes
        assert [(c.namespace, bool(c.added_slot)) for c in change] == [("team/secret", True)]
        (view,) = access.grants("erin")
        assert view.enforced_by == "keys" and "keyring team/secret" in view.note
        assert {s.ring for s in v.key_slots() if s.kind == "x25519"} == {secret}
    with vault.open_vault(str(path), catalog_url=catalog_url, identity=lambda: load_identity("erin")) as v:
        v.pull("team/secret/model", tmp_path / "erin")
    with owner() as v:
        admin, access = owner_signer(v.keys, v.backend), v.access(ClientState.default())
        (gone,) = access.deny("erin", "team/*", admin).key_changes  # a deny above it takes the slot away
        assert gone.namespace == "team/secret" and gone.removed_slots and gone.epoch == 1
        assert not [s for s in v.key_slots() if s.kind == "x25519"]
