"""Hostile storage, hostile catalog rows and careless input, through the installed ``mlvault``.

Each test plants what an attacker with write access to the vault directory or the catalog
could plant (FIFOs, directories, symlinks, edited rows, planted key slots), or does what a
careless user does, and checks the command's exit code and one-line message. No command
may hang, print a traceback, or fall through to "unexpected" (exit 1).
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from vault.crypto.kdf import KdfParams
from vault.formats import keyslot

MLVAULT = str(Path(sys.executable).parent / "mlvault")
PASSPHRASE = "hostile test passphrase"
FAST_KDF = ["--kdf-time", "1", "--kdf-memory-mib", "1", "--kdf-parallelism", "1"]


@dataclass
class Outcome:
    """What one command did."""

    code: int
    out: str
    err: str


@dataclass
class Scratch:
    """A scratch directory with a vault ``v`` holding one pushed version ``team/m``."""

    root: Path
    env: dict[str, str]

    @property
    def vault(self) -> Path:
        return self.root / "v"

    def run(self, *args: str, timeout: float = 60, env: dict[str, str] | None = None) -> Outcome:
        proc = subprocess.run(
            [MLVAULT, *args],
            cwd=self.root,
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
        outcome = Outcome(proc.returncode, proc.stdout, proc.stderr)
        assert "Traceback" not in proc.stderr, proc.stderr
        assert "unexpected" not in proc.stderr, proc.stderr
        assert outcome.code != 1, proc.stderr
        return outcome

    def mlv(self, *args: str, timeout: float = 60) -> Outcome:
        return self.run("--vault", str(self.vault), *args, timeout=timeout)

    def one(self, pattern: str) -> Path:
        found = sorted(self.vault.glob(pattern))
        assert found, pattern
        return found[0]

    def sql(self, statement: str, *params: object) -> None:
        con = sqlite3.connect(self.vault / "catalog.sqlite")
        try:
            con.execute("PRAGMA foreign_keys=OFF")
            con.execute(statement, params)
            con.commit()
        finally:
            con.close()


@pytest.fixture
def scratch(tmp_path: Path) -> Scratch:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLVAULT_") and k not in ("AWS_PROFILE",)}
    env.update(MLVAULT_PASSPHRASE=PASSPHRASE, MLVAULT_CONFIG_DIR=str(tmp_path / "client"))
    s = Scratch(tmp_path, env)
    assert s.run("init", "v", *FAST_KDF).code == 0
    model = tmp_path / "m"
    model.mkdir()
    (model / "a.txt").write_text("hello\n")
    (model / "b.bin").write_bytes(os.urandom(200_000))
    assert s.mlv("push", "m", "team/m", "-q").code == 0
    return s


def _assert_refused(outcome: Outcome, code: int, *words: str) -> None:
    assert outcome.code == code, (outcome.code, outcome.err)
    lines = [line for line in outcome.err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, outcome.err
    for word in words:
        assert word in lines[0], (word, lines[0])


# -- 1, 2: FIFOs and directories in place of objects ---------------------------------------------

PLACES = {
    "config": "config",
    "manifest": "manifests/*",
    "pack": "packs/*/*",
}


def _replace_with(path: Path, kind: str) -> None:
    os.chmod(path, 0o600)
    path.unlink()
    if kind == "fifo":
        os.mkfifo(path)
    else:
        path.mkdir()


@pytest.mark.parametrize("kind", ["fifo", "dir"])
@pytest.mark.parametrize("place", sorted(PLACES))
def test_a_special_file_in_place_of_an_object_is_an_integrity_error(
    scratch: Scratch, place: str, kind: str
) -> None:
    target = scratch.one(PLACES[place])
    _replace_with(target, kind)
    outcome = scratch.mlv("pull", "team/m", "out", "-q", timeout=30)
    _assert_refused(outcome, 5, target.name)
    assert not (scratch.root / "out").exists()
    checked = scratch.mlv("check", "--read-data", timeout=30)
    assert checked.code == 5


def test_a_fifo_planted_as_a_key_slot_neither_hangs_nor_blocks_the_real_slot(scratch: Scratch) -> None:
    os.mkfifo(scratch.vault / "keys" / "owner" / ("0" * 32))
    outcome = scratch.mlv("pull", "team/m", "out", "-q", timeout=30)
    assert outcome.code == 0, outcome.err
    assert (scratch.root / "out" / "a.txt").read_text() == "hello\n"


# -- 3: a damaged SQLite catalog -----------------------------------------------------------------


def test_a_truncated_catalog_is_reported_as_damaged(scratch: Scratch) -> None:
    os.truncate(scratch.vault / "catalog.sqlite", 4096)
    _assert_refused(scratch.mlv("ls"), 5, "catalog", "catalog rebuild")


def test_garbage_in_place_of_the_catalog_is_reported_as_damaged(scratch: Scratch) -> None:
    (scratch.vault / "catalog.sqlite").write_bytes(b"\x17" * 8192)
    _assert_refused(scratch.mlv("ls"), 5, "catalog")


# -- 4, 5: hostile catalog rows, and check agreeing with pull ------------------------------------


@pytest.mark.parametrize(
    "statement",
    [
        "update chunks set length = -5",
        'update chunks set "offset" = -100',
        'update chunks set "offset" = 9223372036854775000',
        "update chunks set pack_id = 'ffffffffffffffffffffffffffffffff'",
        "update chunks set pack_id = '../config'",
    ],
)
def test_hostile_chunk_rows_fail_pull_and_check_reports_them(scratch: Scratch, statement: str) -> None:
    scratch.sql(statement)
    _assert_refused(scratch.mlv("pull", "team/m", "out", "-q"), 5)
    assert not (scratch.root / "out").exists()
    checked = scratch.mlv("check", "--read-data")
    assert checked.code == 5, checked.err
    assert "DAMAGED" in checked.out


def test_a_version_id_that_is_not_hex_is_an_integrity_error(scratch: Scratch) -> None:
    scratch.sql("update versions set id = '../config'")
    scratch.sql("update version_files set version_id = '../config'")
    _assert_refused(scratch.mlv("pull", "team/m", "out", "-q"), 5, "team/m")
    checked = scratch.mlv("check")
    assert checked.code == 5, checked.err
    assert "DAMAGED" in checked.out


def test_check_walks_from_versions_not_from_the_packs_table(scratch: Scratch) -> None:
    scratch.sql("delete from packs")
    pack = scratch.one("packs/*/*")
    os.chmod(pack, 0o600)
    data = bytearray(pack.read_bytes())
    data[len(data) // 2] ^= 0x01
    pack.write_bytes(bytes(data))
    assert scratch.mlv("pull", "team/m", "out", "-q").code == 5
    checked = scratch.mlv("check", "--read-data")
    assert checked.code == 5, checked.out
    assert "team/m@v1" in checked.out


def test_check_reports_a_stored_pack_the_catalog_does_not_index(scratch: Scratch) -> None:
    pack = scratch.one("packs/*/*")
    stray_id = "ab" + "0" * 30
    (scratch.vault / "packs" / "ab").mkdir(exist_ok=True)
    (scratch.vault / "packs" / "ab" / stray_id).write_bytes(pack.read_bytes())
    checked = scratch.mlv("check")
    assert stray_id in checked.out
    assert "not index" in checked.out


def test_check_reports_catalog_file_rows_that_disagree_with_the_manifest(scratch: Scratch) -> None:
    scratch.sql("update version_files set sha256 = ? where path = 'a.txt'", "0" * 64)
    checked = scratch.mlv("check", "--read-data")
    assert checked.code == 5, checked.out
    assert "a.txt" in checked.out


# -- 6: names a pull could never write back ------------------------------------------------------


@pytest.mark.parametrize("name", ["a\\b", "c:evil", "sub\\..\\x"])
def test_a_name_the_manifest_decoder_refuses_is_refused_at_push(scratch: Scratch, name: str) -> None:
    src = scratch.root / "s6"
    src.mkdir()
    (src / name).write_text("x")
    _assert_refused(scratch.mlv("push", "s6", "team/bs", "-q"), 2, "rename it")
    assert scratch.mlv("log", "team/bs").code == 3


def test_a_single_file_with_a_backslash_is_refused_at_push(scratch: Scratch) -> None:
    (scratch.root / "x\\y").write_text("x")
    _assert_refused(scratch.mlv("push", "x\\y", "team/one", "-q"), 2, "rename it")


# -- 7, 8, 9: careless destinations and directories ----------------------------------------------


@pytest.mark.parametrize("dest", ["/proc/mlvault-x", "/sys/mlvault-x"])
def test_pull_into_a_parent_that_cannot_be_written(scratch: Scratch, dest: str) -> None:
    _assert_refused(scratch.mlv("pull", "team/m", dest, "-q"), 2, "cannot write into")


def test_init_on_a_regular_file(scratch: Scratch) -> None:
    (scratch.root / "plain").write_text("not a directory")
    _assert_refused(scratch.run("init", "plain", *FAST_KDF), 2, "plain")
    assert (scratch.root / "plain").read_text() == "not a directory"


def test_read_only_commands_create_nothing_in_a_directory_that_is_not_a_vault(scratch: Scratch) -> None:
    nv = scratch.root / "nv"
    nv.mkdir()
    for args in (["ls"], ["log", "team/m"], ["check"], ["pull", "team/m", "out2"]):
        assert scratch.run("--vault", "nv", *args).code == 3
    assert list(nv.iterdir()) == []


def test_ls_creates_nothing_in_a_vault(scratch: Scratch) -> None:
    for tmp in scratch.vault.glob("tmp"):
        tmp.rmdir()
    before = sorted(p.relative_to(scratch.vault) for p in scratch.vault.rglob("*"))
    assert scratch.mlv("ls").code == 0
    assert scratch.mlv("check").code == 0
    after = sorted(p.relative_to(scratch.vault) for p in scratch.vault.rglob("*"))
    assert [p for p in after if "catalog.sqlite" not in str(p)] == [
        p for p in before if "catalog.sqlite" not in str(p)
    ]


# -- 10: unbounded secrets -----------------------------------------------------------------------


def test_a_passphrase_file_without_end_is_refused(scratch: Scratch) -> None:
    outcome = scratch.run(
        "--vault",
        "v",
        "--passphrase-file",
        "/dev/zero",
        "pull",
        "team/m",
        "out",
        timeout=30,
        env={"MLVAULT_PASSPHRASE": ""},
    )
    assert outcome.code == 2, outcome.err
    assert "/dev/zero" in outcome.err


# -- 11, 14: damaged and planted key slots -------------------------------------------------------


def _owner_slot(scratch: Scratch) -> Path:
    return scratch.one("keys/owner/*")


@pytest.mark.parametrize("damage", ["flip", "truncate", "symlink"])
def test_a_damaged_owner_slot_is_not_called_a_wrong_passphrase(scratch: Scratch, damage: str) -> None:
    slot = _owner_slot(scratch)
    os.chmod(slot, 0o600)
    data = slot.read_bytes()
    if damage == "flip":
        slot.write_bytes(data[:-5] + bytes([data[-5] ^ 1]) + data[-4:])
    elif damage == "truncate":
        slot.write_bytes(data[:40])
    else:
        elsewhere = scratch.root / "elsewhere"
        elsewhere.write_bytes(data)
        slot.unlink()
        slot.symlink_to(elsewhere)
    _assert_refused(scratch.mlv("pull", "team/m", "out", "-q"), 4, "damaged")


def test_a_deleted_config_is_called_missing_not_no_vault(scratch: Scratch) -> None:
    (scratch.vault / "config").unlink()
    _assert_refused(scratch.mlv("ls"), 3, "config", "missing")


def _plant_slow_slot(scratch: Scratch, name: str = "0" * 32) -> None:
    config = (scratch.vault / "config").read_text()
    vault_id = bytes.fromhex(config.split('"vault_id"')[1].split('"')[1])
    slow = KdfParams(time_cost=16, memory_kib=1024 * 1024, parallelism=16)
    blob = keyslot.encode(
        keyslot.KIND_PASSPHRASE,
        vault_id,
        b"\0" * 16,
        bytes.fromhex(name),
        os.urandom(32),
        os.urandom(32),
        kdf=slow,
        salt=os.urandom(16),
    )
    (scratch.vault / "keys" / "owner" / name).write_bytes(blob)


def test_a_planted_slow_slot_is_skipped_and_named(scratch: Scratch) -> None:
    _plant_slow_slot(scratch)
    for state in (scratch.root / "client").glob("unlock-*"):
        state.unlink()  # no memory of the slot that opened this vault: the planted one sorts first
    outcome = scratch.mlv("pull", "team/m", "out", "-q", timeout=30)
    assert outcome.code == 0, outcome.err
    wrong = scratch.run(
        "--vault", "v", "pull", "team/m", "out2", "-q", timeout=30, env={"MLVAULT_PASSPHRASE": "nope"}
    )
    _assert_refused(wrong, 4, "allow-slow-kdf")


def test_init_refuses_a_kdf_far_slower_than_the_default(scratch: Scratch) -> None:
    slow = ["--kdf-time", "3", "--kdf-memory-mib", "1024", "--kdf-parallelism", "4"]
    _assert_refused(scratch.run("init", "v2", *slow), 2, "allow-slow-kdf")
    assert not (scratch.root / "v2" / "config").exists()


# -- 12: a stored catalog URL may only open an existing catalog of this vault ---------------------


def test_a_stored_sqlite_catalog_url_is_never_followed(scratch: Scratch) -> None:
    import json

    config_path = scratch.vault / "config"
    config = json.loads(config_path.read_text())
    config["catalog"] = f"sqlite:///{scratch.root / 'planted.sqlite'}"
    os.chmod(config_path, 0o600)
    config_path.write_text(json.dumps(config))
    _assert_refused(scratch.mlv("ls"), 8)
    assert not (scratch.root / "planted.sqlite").exists()
    assert (
        not (scratch.root / "client" / "catalog-pins.json").exists()
        or "planted" not in (scratch.root / "client" / "catalog-pins.json").read_text()
    )


# -- 13: crash leftovers -------------------------------------------------------------------------


def _dead_owner() -> str:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return f"{proc.pid}-12345"


def test_spool_files_and_staging_dirs_of_dead_processes_are_swept(scratch: Scratch) -> None:
    tag = _dead_owner()
    spool = scratch.vault / "tmp"
    spool.mkdir(exist_ok=True)
    stale_spool = spool / f"mlvault-pack-{tag}-abcdef12"
    stale_spool.write_bytes(b"x" * 1000)
    foreign = spool / "someone-elses-file"
    foreign.write_bytes(b"keep")
    stale_stage = scratch.root / f".out.mlvault-{tag}-zz9"
    (stale_stage / "tree").mkdir(parents=True)
    src = scratch.root / "m2"
    src.mkdir()
    (src / "c.bin").write_bytes(os.urandom(5000))
    assert scratch.mlv("push", "m2", "team/m2", "-q").code == 0
    assert not stale_spool.exists()
    assert foreign.exists()
    assert scratch.mlv("pull", "team/m", "out", "-q").code == 0
    assert not stale_stage.exists()


# -- 15: a cipher suite byte overwritten ---------------------------------------------------------


def test_an_overwritten_suite_byte_on_a_manifest_is_tampering(scratch: Scratch) -> None:
    manifest = scratch.one("manifests/*")
    os.chmod(manifest, 0o600)
    data = bytearray(manifest.read_bytes())
    data[5] = 103
    manifest.write_bytes(bytes(data))
    _assert_refused(scratch.mlv("pull", "team/m", "out", "-q"), 5)


# -- 16: PostgreSQL without its driver -----------------------------------------------------------


def test_a_catalog_driver_that_is_not_installed_names_the_extra(scratch: Scratch) -> None:
    pytest.importorskip("sqlalchemy")
    try:
        import pg8000  # noqa: F401

        pytest.skip("pg8000 is installed here; this test needs a driver that is not")
    except ImportError:
        pass
    outcome = scratch.run("--catalog", "postgresql+pg8000://u@127.0.0.1/x", "init", "v3", *FAST_KDF)
    _assert_refused(outcome, 8, "mlvault[postgres]")
