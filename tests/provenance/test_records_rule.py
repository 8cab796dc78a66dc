"""The validity rule of provenance records and their storage, on a real catalog and an in-memory backend:
who may sign, what a revoke keeps, what the first policy lists, numbered tag moves."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest

from vault import layout
from vault.access.patterns import Capability
from vault.access.policy import AccessPolicy, policy_from_json, policy_to_json
from vault.access.principals import new_principal
from vault.access.provenance import TAG
from vault.access.records import ProvenanceRecords, RecordSigner, record_signer, tag_id
from vault.catalog import Catalog, VersionRow, open_catalog
from vault.clientstate import ClientState
from vault.crypto.kdf import KdfParams
from vault.errors import ProvenanceRefusedError
from vault.signing import keys
from vault.signing.signers import LocalSigner
from vault.storage.memory import MemoryBackend

CHEAP_KDF = KdfParams(time_cost=1, memory_kib=8, parallelism=1)
VAULT = "ab" * 16
AT = dt.datetime(2027, 1, 2, tzinfo=dt.UTC)
PUSH_TAG = frozenset({Capability.PUSH, Capability.TAG})


@pytest.fixture
def catalog(tmp_path: Path, catalog_url: str | None) -> Iterator[Catalog]:
    c = open_catalog(catalog_url or f"sqlite:///{tmp_path / 'c.sqlite'}")
    yield c
    c.close()


class World:
    def __init__(self, catalog: Catalog) -> None:
        state = ClientState.default()
        self.alice = state.identities().create("alice", None, CHEAP_KDF)
        self.alice_key = LocalSigner(state.identities().load("alice", None).ecdsa_private)
        state.identities().create("root", None, CHEAP_KDF)
        self.root = LocalSigner(state.identities().load("root", None).ecdsa_private)
        p = new_principal("alice", self.alice, kind="user", expires=None, at=AT)
        self.alice_id = p.id
        self.policy = AccessPolicy(VAULT).with_principal(p).granted("alice", "team/*", PUSH_TAG)
        self.backend = MemoryBackend()
        self.records = ProvenanceRecords(self.backend, catalog, vault_id=VAULT, clock=lambda: AT)
        self.admins = (self.root.fingerprint(),)
        self.as_alice = RecordSigner(self.alice_key, self.alice_id)
        self.as_root = RecordSigner(self.root, None)


def version(number: int = 1, vid: str = "cd" * 16, digest: str = "12" * 32) -> VersionRow:
    return VersionRow(
        id=vid,
        artifact="team/model",
        kind="model",
        number=number,
        digest=digest,
        size=1,
        file_count=1,
        root="dir",
        ring_id="ef" * 16,
        created_by="x",
        created_at=AT,
        tags=(),
    )


def test_a_pushers_record_vouches_for_exactly_its_version(catalog: Catalog) -> None:
    w = World(catalog)
    v = version()
    row = w.records.write_version(w.as_alice, w.policy, v, v.number)
    assert layout.parse_version_record_key(row.storage_key) == (v.id, row.digest)
    w.records.check_version(v, w.policy, w.admins)
    for other in (version(number=2), version(digest="34" * 32)):  # the row renumbered, the manifest swapped
        with pytest.raises(ProvenanceRefusedError, match="not this version"):
            w.records.check_version(other, w.policy, w.admins)
    with pytest.raises(ProvenanceRefusedError, match="no provenance record"):
        w.records.check_version(version(vid="01" * 16), w.policy, w.admins)
    # indexed by principal, for the next policy change
    assert [r.digest for r in catalog.records_by_principals([w.alice_id])] == [row.digest]


def test_who_may_sign(catalog: Catalog) -> None:
    w = World(catalog)
    v = version()
    w.records.write_version(w.as_root, w.policy, v, v.number)  # the pinned root admin key, no principal
    w.records.check_version(v, w.policy, w.admins)
    with pytest.raises(ProvenanceRefusedError, match="no principal and no pinned admin key"):
        w.records.check_version(v, w.policy, ())  # a client that did not pin that key
    # a key claiming to be alice's principal is refused
    v2 = version(vid="02" * 16)
    w.records.write_version(RecordSigner(w.root, w.alice_id), w.policy, v2, 1)
    with pytest.raises(ProvenanceRefusedError, match="not by alice's signing key"):
        w.records.check_version(v2, w.policy, w.admins)
    # record_signer picks the principal for alice's key, root for the admin key, nobody otherwise
    stranger = LocalSigner(keys.generate_private_key())
    assert record_signer(w.policy, [stranger], w.admins) is None
    assert record_signer(w.policy, [w.alice_key], w.admins) == w.as_alice
    assert record_signer(w.policy, [w.root], w.admins) == w.as_root


def test_revoke_keeps_earlier_records_and_refuses_later_ones(catalog: Catalog) -> None:
    w = World(catalog)
    v1 = version()
    w.records.write_version(w.as_alice, w.policy, v1, 1)
    after = w.policy.revoked("alice", "team/*", {Capability.PUSH})
    signed = w.records.with_provenance(w.policy, w.policy, after, w.admins)
    assert len(signed.kept) == 1
    signed = policy_from_json(policy_to_json(signed))  # the kept digests survive the document
    w.records.check_version(v1, signed, w.admins)
    # a later record from alice, naming the serial under which she held push, is refused
    v2 = version(number=2, vid="02" * 16)
    w.records.write_version(w.as_alice, w.policy, v2, 2)
    with pytest.raises(ProvenanceRefusedError, match="does not hold push"):
        w.records.check_version(v2, signed, w.admins)
    # removing her entirely keeps them as well
    gone = w.records.with_provenance(w.policy, w.policy, w.policy.without_principal("alice", AT), w.admins)
    w.records.check_version(v1, gone, w.admins)
    # a change that takes nothing keeps nothing
    same = w.records.with_provenance(w.policy, w.policy, w.policy.granted("alice", "x/*", PUSH_TAG), w.admins)
    assert same.kept == frozenset()


def test_tag_moves_are_numbered_and_the_newest_decides(catalog: Catalog) -> None:
    w = World(catalog)
    v1, v2 = version(), version(number=2, vid="02" * 16)
    assert w.records.write_tag(w.as_alice, w.policy, "team/model", "prod", v1.id).seq == 1
    w.records.check_tag("team/model", "prod", v1, w.policy, w.admins)
    second = w.records.write_tag(w.as_alice, w.policy, "team/model", "prod", v2.id)
    assert second.seq == 2
    tid = tag_id(VAULT, "team/model", "prod")
    assert w.backend.list(layout.tag_records_prefix(tid))
    w.records.check_tag("team/model", "prod", v2, w.policy, w.admins)
    with pytest.raises(ProvenanceRefusedError, match="moved outside a signed record"):
        w.records.check_tag("team/model", "prod", v1, w.policy, w.admins)  # a rollback by SQL
    # the second record remembers where the tag was
    from vault.access.provenance import verify_record

    newest = verify_record(w.backend.get(layout.tag_record_key(tid, 2))).record
    assert (newest.kind, newest.previous, newest.seq) == (TAG, v1.id, 2)
    # a tag record by a principal without tag is refused
    no_tag = w.policy.revoked("alice", "team/*", {Capability.TAG})
    with pytest.raises(ProvenanceRefusedError, match="does not hold tag"):
        w.records.check_tag("team/model", "prod", v2, no_tag, w.admins)


def test_the_first_policy_lists_what_exists(catalog: Catalog) -> None:
    w = World(catalog)
    listed = dataclasses.replace(
        w.policy, legacy_versions=frozenset({(version().id, version().digest)}), legacy_tags=frozenset()
    )
    w.records.check_version(version(), listed, w.admins)
    with pytest.raises(ProvenanceRefusedError):
        w.records.check_version(version(digest="34" * 32), listed, w.admins)  # same id, other manifest
    with pytest.raises(ProvenanceRefusedError, match="no provenance record"):
        w.records.check_tag("team/model", "prod", version(), listed, w.admins)
    tagged = dataclasses.replace(listed, legacy_tags=frozenset({("team/model", "prod", version().id)}))
    w.records.check_tag("team/model", "prod", version(), tagged, w.admins)
    # but once a signed move exists, the newest record decides
    w.records.write_tag(w.as_alice, tagged, "team/model", "prod", "02" * 16)
    with pytest.raises(ProvenanceRefusedError, match="moved outside"):
        w.records.check_tag("team/model", "prod", version(), tagged, w.admins)


def test_damaged_and_misplaced_records_are_refused(catalog: Catalog) -> None:
    w = World(catalog)
    v = version()
    row = w.records.write_version(w.as_alice, w.policy, v, 1)
    document = w.backend.get(row.storage_key)
    w.backend.delete(row.storage_key)
    w.backend.put(row.storage_key, document[:-3])
    with pytest.raises(ProvenanceRefusedError, match="no valid provenance record"):
        w.records.check_version(v, w.policy, w.admins)
    # a valid record of another version copied under this one's prefix does not count
    w.backend.delete(row.storage_key)
    other = w.records.write_version(w.as_alice, w.policy, version(vid="02" * 16), 1)
    w.backend.put(layout.version_record_key(v.id, other.digest), w.backend.get(other.storage_key))
    with pytest.raises(ProvenanceRefusedError, match="not this version"):
        w.records.check_version(v, w.policy, w.admins)


def test_concurrent_tag_moves_take_distinct_numbers(catalog: Catalog) -> None:
    import threading

    w = World(catalog)
    targets = [f"{i:02d}" * 16 for i in range(1, 9)]
    moves: dict[int, str] = {}
    lock = threading.Lock()

    def move(target: str) -> None:
        row = w.records.write_tag(w.as_alice, w.policy, "team/model", "prod", target, index=False)
        assert row.seq is not None
        with lock:
            moves[row.seq] = target

    threads = [threading.Thread(target=move, args=(t,)) for t in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(moves) == list(range(1, 9))  # write-once storage gave each mover its own number
    w.records.check_tag("team/model", "prod", version(vid=moves[8]), w.policy, w.admins)


def test_a_planted_last_numbered_tag_record_is_named(catalog: Catalog) -> None:
    from vault.access.provenance import MAX_SEQ
    from vault.errors import IntegrityError

    w = World(catalog)
    tid = tag_id(VAULT, "team/model", "prod")
    w.backend.put(layout.tag_record_key(tid, MAX_SEQ), b"planted")
    with pytest.raises(IntegrityError, match="planted"):
        w.records.write_tag(w.as_alice, w.policy, "team/model", "prod", "01" * 16)
    with pytest.raises(ProvenanceRefusedError, match="unusable"):
        w.records.check_tag("team/model", "prod", version(), w.policy, w.admins)


def test_an_old_tag_record_copied_under_a_higher_number_is_a_refused_rollback(catalog: Catalog) -> None:
    w = World(catalog)
    v1, v2 = version(), version(number=2, vid="02" * 16)
    w.records.write_tag(w.as_alice, w.policy, "team/model", "prod", v1.id)
    w.records.write_tag(w.as_alice, w.policy, "team/model", "prod", v2.id)  # e.g. a security fix
    tid = tag_id(VAULT, "team/model", "prod")
    # a storage writer replays move #1 (genuinely signed, for this tag) as #3, and the catalog is
    # pointed back at v1 by SQL: without the number check the newest record would vouch for v1
    w.backend.put(layout.tag_record_key(tid, 3), w.backend.get(layout.tag_record_key(tid, 1)))
    with pytest.raises(ProvenanceRefusedError, match="stored as #3 but signed as #1"):
        w.records.check_tag("team/model", "prod", v1, w.policy, w.admins)
    # the next genuine move does not take the replay's version as where the tag was
    fourth = w.records.write_tag(w.as_alice, w.policy, "team/model", "prod", v2.id)
    assert fourth.seq == 4
    from vault.access.provenance import verify_record

    assert verify_record(w.backend.get(layout.tag_record_key(tid, 4))).record.previous is None
    w.records.check_tag("team/model", "prod", v2, w.policy, w.admins)
