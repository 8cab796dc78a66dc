"""``rekey NS --reencrypt``: every chunk and manifest rewritten under the newest epoch, resumable.

After it, a removed recipient who kept its old slot reads nothing (exit 4), the owner pulls every
version byte-identical, ``check --read-data`` is clean, and a re-run has nothing left to do. The
real CLI, killed with SIGKILL at several points and re-run, ends in the same state.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from keyhelpers import CHEAP_KDF, PASSPHRASE, new_identity
from test_rekey import chunk_epochs, run, source

import vault
from vault import layout

MLVAULT = str(Path(sys.executable).parent / "mlvault")


def digest_tree(path: Path) -> dict[str, str]:
    return {
        p.relative_to(path).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(path.rglob("*"))
        if p.is_file()
    }


def pull_all(path: Path, dest: Path) -> dict[str, dict[str, str]]:
    out = {}
    dest.mkdir()
    with vault.open_vault(str(path), passphrase=PASSPHRASE) as v:
        for artifact in v.list_artifacts():
            for version in v.log(artifact.name):
                ref = f"{version.artifact}@v{version.number}"
                target = dest / ref.replace("/", "_")
                v.pull(ref, target)
                out[ref] = digest_tree(target)
    return out


def test_reencrypt_leaves_a_removed_recipient_nothing(tmp_path: Path) -> None:
    path = tmp_path / "v"
    alice = new_identity("alice")
    with vault.init_vault(str(path), passphrase=PASSPHRASE, kdf=CHEAP_KDF, pack_size=1 << 20) as v:
        v.push(source(tmp_path, "a", os.urandom(3 << 20)), "team/model")
        v.push(source(tmp_path, "r", os.urandom(1 << 20)), "research/model")
        slot_id = v.add_recipient(alice, "team")
        ring = v.catalog.keyring_for("team")
        assert ring is not None
        kept = v.backend.get(layout.slot_key(ring, slot_id))
        v.remove_slot(slot_id)
    assert run("rekey", "team", "-V", str(path)).exit_code == 0
    with vault.open_vault(str(path), passphrase=PASSPHRASE) as v:
        old_packs = {p.id for p in v.catalog.all_packs() if p.ring_id == ring}  # epoch 0
        v.push(source(tmp_path, "b", os.urandom(2 << 20)), "team/model")
    expected = pull_all(path, tmp_path / "before")

    done = run("rekey", "team", "--reencrypt", "-V", str(path), "--json")
    assert done.exit_code == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["rekey"]["epoch"] == 1 and not report["rekey"]["new_epoch"]  # the clean epoch is reused
    stats = report["reencrypted"]
    assert stats["chunks"] > 0 and stats["bytes_read"] >= 3 << 20 and stats["manifests"] == 1

    with vault.open_vault(str(path), passphrase=PASSPHRASE) as v:
        assert chunk_epochs(v, ring) == {1}
        assert not old_packs & {p.id for p in v.catalog.all_packs()}  # vacated: left for gc
        assert all(v.backend.exists(layout.pack_key(p)) for p in old_packs)
        assert v.check(read_data=True).ok
        v.backend.put(layout.slot_key(ring, slot_id), kept)  # alice plants what she kept
    assert pull_all(path, tmp_path / "after") == expected
    for ref in ("team/model@v1", "team/model@v2"):
        pulled = run(
            "pull",
            ref,
            str(tmp_path / ref.replace("/", "_")),
            "-V",
            str(path),
            "--identity",
            "alice",
            owner=False,
        )
        assert pulled.exit_code == 4, (ref, pulled.stderr)

    again = run("rekey", "team", "--reencrypt", "-V", str(path), "--json")
    assert again.exit_code == 2 and slot_id in again.stderr  # alice's planted slot has no record
    again = json.loads(
        run("rekey", "team", "--reencrypt", "-V", str(path), "--json", "--drop-unrewrappable").stdout
    )
    assert again["reencrypted"]["chunks"] == 0 and again["reencrypted"]["manifests"] == 0


def _kill_after(path: Path, *, new_packs: int | None, delay: float | None) -> bool:
    """Run `rekey team --reencrypt`, SIGKILL it after ``new_packs`` packs or ``delay`` s; True if killed."""
    env = {**os.environ, "MLVAULT_PASSPHRASE": PASSPHRASE}
    env.pop("MLVAULT_VAULT", None)
    packs_dir = path / "packs"
    before = sum(1 for _ in packs_dir.rglob("*"))
    proc = subprocess.Popen(
        [MLVAULT, "--vault", str(path), "rekey", "team", "--reencrypt", "--quiet"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    started = time.monotonic()
    try:
        while proc.poll() is None and time.monotonic() - started < 120:
            grown = sum(1 for _ in packs_dir.rglob("*")) - before
            if (new_packs is not None and grown >= new_packs) or (
                delay is not None and time.monotonic() - started >= delay
            ):
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.002)
    finally:
        if proc.poll() is None and time.monotonic() - started >= 120:
            proc.kill()
        out, err = proc.communicate()
    if proc.returncode == -signal.SIGKILL:
        return True
    assert proc.returncode == 0, (out, err)
    return False


@pytest.mark.slow
def test_reencrypt_killed_at_random_points_resumes(tmp_path: Path) -> None:
    path = tmp_path / "v"
    with vault.init_vault(str(path), passphrase=PASSPHRASE, kdf=CHEAP_KDF, pack_size=1 << 20) as v:
        v.push(source(tmp_path, "a", os.urandom(12 << 20)), "team/model")
        v.push(source(tmp_path, "b", os.urandom(8 << 20)), "team/model")
        v.push(source(tmp_path, "c", os.urandom(6 << 20)), "team/data")
        ring = v.catalog.keyring_for("team")
        assert ring is not None
    expected = pull_all(path, tmp_path / "before")
    rng = random.Random(9)
    kills = 0
    for attempt in range(6):  # bounded: a few kill points by progress, a few by time
        if attempt < 3:
            killed = _kill_after(path, new_packs=rng.randint(1, 8), delay=None)
        else:
            killed = _kill_after(path, new_packs=None, delay=rng.uniform(0.3, 3.0))
        kills += killed
    assert kills >= 3
    done = run("rekey", "team", "--reencrypt", "-V", str(path), "--json")
    assert done.exit_code == 0, done.stderr
    with vault.open_vault(str(path), passphrase=PASSPHRASE) as v:
        newest = v.keys.keyring(ring).epoch
        assert chunk_epochs(v, ring) == {newest}
        report = v.check(read_data=True)
        assert report.ok, report.problems
    assert pull_all(path, tmp_path / "after") == expected
