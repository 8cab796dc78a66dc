"""``backup run`` of a schedule with ``--include``: the snapshot and the copied objects cover only the
included artifacts (and what opening them needs); a restore holds them and nothing else."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

import vault
from vault import layout
from vault.backup.definition import Target, parse_definition
from vault.backup.include import select_included
from vault.backup.restore import restore_vault
from vault.catalog.export import export_rows
from vault.clientstate.identities import Identities
from vault.errors import NotFoundError
from vault.storage.local import LocalBackend

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
PASSPHRASE = "correct horse battery staple"  # tests/conftest.py's make_vault


def packs_by_ring(v: vault.Vault) -> dict[str, set[str]]:
    entry = export_rows(v.catalog)["packs"]
    pid, ring = entry["columns"].index("id"), entry["columns"].index("ring_id")
    out: dict[str, set[str]] = {}
    for row in entry["rows"]:
        out.setdefault(row[ring], set()).add(layout.pack_key(row[pid]))
    return out


def test_include_backs_up_and_restores_only_the_matching_artifacts(
    make_vault: Callable[..., vault.Vault], tmp_path: Path, cheap_kdf: object
) -> None:
    v = make_vault()
    ids = Identities(tmp_path / "identities")
    ids.create("recovery", None, cheap_kdf)  # type: ignore[arg-type]
    v.add_recovery(ids.public("recovery"))
    sources = {}
    for name in ("team/a", "lab/b"):
        data = tmp_path / name.replace("/", "_")
        data.mkdir()
        (data / "weights.bin").write_bytes(os.urandom(250_000))
        (data / "notes.txt").write_text(f"{name}\n")
        v.push(data, name, tags=["prod"], metadata={"owner": name})
        sources[name] = data
    first_weights = (sources["team/a"] / "weights.bin").read_bytes()
    (sources["team/a"] / "weights.bin").write_bytes(os.urandom(100_000))
    v.push(sources["team/a"], "team/a", parents=["team/a@v1", "lab/b@v1"])
    team_ring = v.resolve("team/a@v1").ring_id
    lab_ring = v.resolve("lab/b@v1").ring_id
    assert team_ring != lab_ring
    rings = packs_by_ring(v)
    lab_only = rings[lab_ring] - rings[team_ring]
    assert lab_only

    definition = parse_definition(
        name="teams",
        cron="0 * * * *",
        tz="UTC",
        target=Target(str(tmp_path / "target")),
        include=["team/*"],
        keep={"last": 3},
    )
    v.backup_schedules(clock=lambda: T0).add(definition)
    (run,) = v.backup_runner(clock=lambda: T0).run_named("teams").runs
    assert run.outcome == "success", run.message

    target = LocalBackend(tmp_path / "target")
    on_target = set(target.list())
    assert not lab_only & on_target  # no pack only lab/b uses was copied
    assert rings[team_ring] <= on_target
    assert layout.manifest_key(v.resolve("team/a@v2").id) in on_target
    assert layout.manifest_key(v.resolve("lab/b@v1").id) not in on_target
    assert not any(key.startswith(layout.slot_prefix(lab_ring)) for key in on_target)
    for key in on_target - {layout.BACKUP_TARGET}:
        if not key.startswith(layout.SNAPSHOTS_PREFIX):
            assert target.get(key) == v.backend.get(key)  # verbatim
    v.close()

    identity = ids.load("recovery", None)
    restored = tmp_path / "restored"
    report = restore_vault(target, identity, to_url=str(restored))
    assert report.versions_checked == 2
    opened = vault.open_vault(str(restored), passphrase=PASSPHRASE)
    try:
        dest = tmp_path / "pulled"
        opened.pull("team/a@prod", dest)
        assert (dest / "weights.bin").read_bytes() == first_weights
        dest2 = tmp_path / "pulled2"
        opened.pull("team/a@v2", dest2)
        for path in sources["team/a"].iterdir():
            assert (dest2 / path.name).read_bytes() == path.read_bytes()  # byte-identical
        details = opened.show("team/a@v2")
        assert details.parents == ["team/a@v1"]  # lineage to the excluded lab/b@v1 dropped
        assert opened.show("team/a@v1").metadata == {"owner": "team/a"}
        with pytest.raises(NotFoundError):
            opened.resolve("lab/b@v1")
        assert opened.check(read_data=True).ok
    finally:
        opened.close()


def test_select_included_drops_lineage_to_excluded_parents_and_their_rings() -> None:
    def table(columns: list[str], *rows: list[object]) -> dict[str, object]:
        return {"columns": columns, "rows": [list(r) for r in rows]}

    r1, r2 = "1" * 32, "2" * 32
    va, vb = "a" * 32, "b" * 32
    p1, p2 = "c" * 32, "d" * 32
    rows = {
        "keyrings": table(["ring_id", "namespace"], [r1, "team"], [r2, "lab"]),
        "artifacts": table(["id", "name", "namespace"], [1, "team/a", "team"], [2, "lab/b", "lab"]),
        "versions": table(["id", "artifact_id", "ring_id"], [va, 1, r1], [vb, 2, r2]),
        "version_files": table(["version_id", "path"], [va, "x"], [vb, "y"]),
        "version_metadata": table(["version_id", "key"], [vb, "k"]),
        "lineage": table(["version_id", "parent_id"], [va, vb]),
        "tags": table(["artifact_id", "name", "version_id"], [1, "prod", va], [2, "prod", vb]),
        "packs": table(["id", "ring_id"], [p1, r1], [p2, r2]),
        "chunks": table(["ring_id", "pack_id"], [r1, p1], [r2, p2]),
        "signatures": table(["id", "version_id"], [1, vb]),
        "key_slots": table(["slot_id", "ring"], ["e" * 32, "owner"], ["f" * 32, r1], ["0" * 32, r2]),
        "audit_log": table(["seq"], [1], [2]),
    }
    out, wanted = select_included(rows, ("team/*",))
    assert [r[0] for r in out["versions"]["rows"]] == [va]
    assert out["lineage"]["rows"] == [] and out["signatures"]["rows"] == []
    assert [r[0] for r in out["packs"]["rows"]] == [p1]
    assert [r[1] for r in out["key_slots"]["rows"]] == ["owner", r1]
    assert len(out["audit_log"]["rows"]) == 2  # the chain stays whole
    assert len(rows["versions"]["rows"]) == 2  # type: ignore[arg-type]  # the input is not changed
    assert wanted(layout.pack_key(p1)) and not wanted(layout.pack_key(p2))
    assert wanted(layout.slot_key("owner", "e" * 32)) and not wanted(layout.slot_key(r2, "0" * 32))
    assert wanted(layout.manifest_key(va)) and not wanted(layout.manifest_key(vb))
    assert wanted(layout.CONFIG) and wanted(layout.audit_checkpoint_key(1))
    # Provenance records: those of included versions, and every tag's (tag ids name no artifact).
    assert wanted(layout.version_record_key(va, "9" * 64)) and not wanted(
        layout.version_record_key(vb, "9" * 64)
    )
    assert wanted(layout.tag_record_key("7" * 32, 1))
    assert wanted(layout.owner_identity_key("5" * 32))  # vault-wide kinds are kept whole
