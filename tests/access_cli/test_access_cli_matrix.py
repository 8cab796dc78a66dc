"""Every command checks the caller's capability first (exit 15), through the real CLI; listings leave
out what the caller may not list. The world is described in conftest.py."""

from __future__ import annotations

import json

import pytest
from accessworld import ARTIFACTS, World

REFUSED = 15
REF = "team/vision/resnet@v1"
# the matrix and the listing tests run on SQLite and PostgreSQL; the rest on SQLite (they are slow)
SQLITE_ONLY = pytest.mark.parametrize("catalog_url", ["sqlite"], indirect=True)


def commands(w: World, dest: str) -> dict[str, tuple[str, ...]]:
    """One invocation of each command the matrix covers."""
    return {
        "pull": ("pull", REF, dest),
        "show": ("show", REF),
        "tag": ("tag", REF, "prod"),
        "push": ("push", str(w.src), "team/vision/resnet"),
        "sign": ("sign", REF, "--key", "release"),
        "verify": ("verify", REF),
        "log": ("log", "team/vision/resnet"),
        "ls": ("ls",),
        "grant": ("grant", "carol", "team/*", "read", "--admin-key", "root"),
        "keys": ("keys", "ls"),
        "check": ("check",),
        "rekey": ("rekey", "team"),
        "namespace": ("namespace", "create", "team/fresh", "--own-keyring"),
        "audit": ("audit", "ls"),
        "principal": ("principal", "ls"),
        "attest": ("attest", REF),
        "backup forget": ("backup", "forget", "nightly"),
        "backup verify": ("backup", "verify", "nightly"),
        "backup run": ("backup", "run", "nightly"),
        "backup": (
            "backup",
            "schedule",
            "add",
            "nightly",
            "--cron",
            "@daily",
            "--to",
            "/srv/b",
            "--keep-last",
            "1",
        ),
    }


def test_ungranted_revoked_and_unknown_callers_are_refused_everything(
    world: World, tmp_path_factory: pytest.TempPathFactory
) -> None:
    dest = str(tmp_path_factory.mktemp("out") / "x")
    wrong = {}
    for who in ("carol", "dave", "eve"):
        for name, args in commands(world, dest).items():
            result = world.run(who, *args)
            last = result.stderr.strip().splitlines()[-1] if result.stderr.strip() else ""
            if result.exit_code != REFUSED or not last.startswith("error: permission denied"):
                wrong[who, name] = (result.exit_code, last)
    assert wrong == {}
    told = world.run("eve", "ls").stderr
    assert "identity eve" in told and "is not a principal" in told
    told = world.run("carol", "pull", REF, dest).stderr
    assert (
        "principal carol may not pull team/vision/resnet (needs read): default deny: no rule of carol" in told
    )
    assert "no rule of dave grants list" in world.run("dave", "ls").stderr


@SQLITE_ONLY
def test_what_a_principal_is_granted_passes_the_gate(
    world: World, tmp_path_factory: pytest.TempPathFactory
) -> None:
    out = tmp_path_factory.mktemp("out")
    world.ok("alice", "show", REF)
    world.ok("alice", "log", "team/vision/resnet")
    world.ok("alice", "tag", REF, "staging")
    world.ok("alice", "push", str(world.src), "team/vision/resnet", "--tag", "candidate")
    pulled = world.run("alice", "pull", "team/vision/resnet@candidate", str(out / "a"))
    assert pulled.exit_code == 0, pulled.stderr
    assert (out / "a" / "weights.bin").read_bytes() == (world.src / "weights.bin").read_bytes()
    world.ok(None, "key", "new", "release", "--unencrypted")
    signed = world.ok("alice", "sign", REF, "--key", "release")
    assert "signed team/vision/resnet@v1" in signed.stdout
    world.ok("root", "keys", "ls")
    world.ok("bob", "keys", "ls")
    world.ok("bob", "show", "team/nlp/bert@v1")
    # ci's push grant on team/vision/+ passes the gate; its missing key slot then stops it (exit 4)
    assert world.run("ci", "push", str(world.src), "team/vision/resnet").exit_code == 4
    # lineage needs list on the parents; show leaves out parents the caller may no longer list
    derive = ("push", str(world.src), "team/vision/derived", "--from", "research/model@v1", "--from", REF)
    assert world.run("alice", *derive).exit_code == REFUSED
    world.ok(None, "grant", "alice", "research/model", "list", "--admin-key", "root")
    world.ok("alice", *derive)
    world.ok(None, "revoke", "alice", "research/model", "list", "--admin-key", "root")
    shown = json.loads(world.ok("alice", "show", "team/vision/derived@v1", "--json").stdout)
    assert shown["parents"] == [REF]
    shown = json.loads(world.ok(None, "show", "team/vision/derived@v1", "--json").stdout)
    assert sorted(shown["parents"]) == ["research/model@v1", REF]


DECIDED = [
    (
        "alice",
        ("pull", "research/model@v1", "OUT"),
        "default deny: no rule of alice matches research/model",
    ),
    ("alice", ("keys", "ls"), "alice may not list key slots (needs admin on '*')"),
    ("alice", ("grant", "carol", "team/*", "read", "--admin-key", "root"), "alice may not grant"),
    ("alice", ("rekey", "team"), "alice may not rekey"),
    ("alice", ("check",), "alice may not check"),
    ("ci", ("pull", REF, "OUT"), "grant team/vision/+ (list,push) to ci"),
    ("ci", ("push", "SRC", "team/vision/resnet/big"), "default deny: no rule of ci matches"),
    ("ci", ("tag", REF, "prod"), "lacks tag"),
    ("alice", ("push", "SRC", "team/x", "--from", "research/model@v1"), "alice may not log research/model"),
    ("bob", ("pull", "team/secret/keys@v1", "OUT"), "deny team/secret/* to bob"),
    ("bob", ("log", "team/secret/keys"), "a deny wins over every grant, admin included"),
]


@SQLITE_ONLY
def test_the_deciding_rule_is_named(world: World, tmp_path_factory: pytest.TempPathFactory) -> None:
    out = str(tmp_path_factory.mktemp("out") / "x")
    wrong = {}
    for who, args, says in DECIDED:
        argv = tuple(out if a == "OUT" else str(world.src) if a == "SRC" else a for a in args)
        result = world.run(who, *argv)
        if result.exit_code != REFUSED or says not in result.stderr:
            wrong[who, args] = (result.exit_code, result.stderr)
    assert wrong == {}


def listed(world: World, who: str | None, *args: str) -> list[str]:
    return [row["name"] for row in json.loads(world.ok(who, "ls", "--json", *args).stdout)]


def test_ls_and_log_leave_out_what_the_caller_may_not_list(world: World) -> None:
    assert listed(world, None) == sorted(ARTIFACTS)
    assert listed(world, "root") == sorted(ARTIFACTS)
    assert listed(world, "alice") == sorted(a for a in ARTIFACTS if a.startswith("team/"))
    assert listed(world, "alice", "team/vision") == ["team/vision/resnet", "team/vision/resnet/big"]
    assert listed(world, "ci") == ["team/vision/resnet"]  # '+' is exactly one segment
    assert listed(world, "bob") == sorted(a for a in ARTIFACTS if a != "team/secret/keys")
    table = world.ok("bob", "ls").stdout
    assert "team/nlp/bert" in table and "secret" not in table
    assert world.run("ci", "log", "team/vision/resnet/big").exit_code == REFUSED
    assert world.run("ci", "log", "no/such/artifact").exit_code == REFUSED  # existence is not told
    versions = json.loads(world.ok("ci", "log", "team/vision/resnet", "--json").stdout)
    assert [v["number"] for v in versions] == [1]


@SQLITE_ONLY
def test_grants_and_revokes_count_from_the_next_command(world: World) -> None:
    assert world.run("carol", "ls").exit_code == REFUSED
    world.ok(None, "grant", "carol", "team/nlp/*", "list", "--admin-key", "root")
    assert listed(world, "carol") == ["team/nlp/bert"]
    world.ok(None, "deny", "carol", "team/nlp/*", "--admin-key", "root")
    assert world.run("carol", "log", "team/nlp/bert").exit_code == REFUSED
    world.ok(None, "principal", "rm", "alice", "--admin-key", "root")
    told = world.run("alice", "show", REF)
    assert told.exit_code == REFUSED and "was principal alice, removed at" in told.stderr


def audit_rows(world: World) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = json.loads(world.ok(None, "audit", "ls", "--json").stdout)
    return rows


@SQLITE_ONLY
def test_a_refused_command_does_no_work(world: World) -> None:
    rows, objects = audit_rows(world), world.objects()
    # frank's identity is passphrase-protected and no passphrase is available: had anything tried to
    # unlock it, the command would have failed for that instead
    for args in (
        ("push", str(world.src), "team/vision/resnet", "--tag", "prod"),
        ("pull", REF, str(world.path.parent / "out")),
        ("keys", "add-passphrase"),
        ("grant", "carol", "*", "admin", "--admin-key", "root"),
    ):
        result = world.run("frank", *args)
        assert result.exit_code == REFUSED, (args, result.stderr)
        assert "passphrase" not in result.stderr.lower()
    result = world.run("carol", "push", str(world.src), "team/vision/resnet")
    assert result.exit_code == REFUSED
    after = audit_rows(world)
    assert [r for r in after if r["action"] in ("push", "pull", "tag")] == [
        r for r in rows if r["action"] in ("push", "pull", "tag")
    ]
    assert world.objects() == objects
    assert not (world.path.parent / "out").exists()
    assert json.loads(world.ok(None, "log", "team/vision/resnet", "--json").stdout)[0]["number"] == 1
    # the control: once frank may pull, the same command gets as far as frank's passphrase
    world.ok(None, "principal", "add", "frank", "--identity", world.pub("frank"), "--admin-key", "root")
    world.ok(None, "grant", "frank", "team/*", "read", "--admin-key", "root")
    result = world.run("frank", "pull", REF, str(world.path.parent / "out"))
    assert result.exit_code not in (0, REFUSED) and "passphrase" in result.stderr
