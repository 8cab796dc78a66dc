"""Several processes pushing at once: no lock, yet distinct consecutive versions and one keyring.

Workers are real processes (``spawn``) that open the vault themselves, unlock it, wait on a
barrier and then push, so the keyring creation, the chunk index inserts and the version
number allocation all contend. Run on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import multiprocessing
import queue
from collections.abc import Callable
from pathlib import Path

import pytest
from corehelpers import PASSPHRASE, push_worker, snapshot, write_random

import vault

MakeVault = Callable[..., vault.Vault]


def _run_pushers(
    url: str, catalog_url: str | None, jobs: list[tuple[Path, str]]
) -> list[tuple[int, str, str]]:
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(len(jobs))
    results = ctx.Queue()
    procs = [
        ctx.Process(
            target=push_worker, args=(url, PASSPHRASE, catalog_url, str(src), artifact, barrier, results)
        )
        for src, artifact in jobs
    ]
    for proc in procs:
        proc.start()
    outcomes = []
    try:
        for _ in jobs:
            outcomes.append(results.get(timeout=120))
    except queue.Empty:
        pytest.fail(f"a pusher did not report; got {outcomes}")
    finally:
        for proc in procs:
            proc.join(timeout=60)
            if proc.is_alive():
                proc.kill()
    errors = [o for o in outcomes if o[0] != "ok"]
    assert not errors, errors
    assert all(proc.exitcode == 0 for proc in procs)
    return [(number, source, version_id) for _, number, source, version_id in outcomes]


def _keyring_dirs(v: vault.Vault) -> set[str]:
    return {key.split("/")[1] for key in v.backend.list("keys/")}


def test_parallel_pushes_to_one_artifact_get_consecutive_versions(
    make_vault: MakeVault, catalog_url: str | None, tmp_path: Path
) -> None:
    v = make_vault(catalog_url=catalog_url)
    workers = 4
    jobs = []
    for i in range(workers):
        src = tmp_path / f"src{i}"
        write_random(src / "weights.bin", 1_500_000 + i * 1000, seed=100 + i)
        write_random(src / "shared.bin", 300_000, seed=99)  # same bytes in every push: index inserts collide
        jobs.append((src, "race/model"))  # a new namespace: every worker also races to create its keyring

    outcomes = _run_pushers(v.backend.url, catalog_url, jobs)

    assert sorted(number for number, _, _ in outcomes) == list(range(1, workers + 1))
    assert len({version_id for _, _, version_id in outcomes}) == workers
    assert [row.number for row in v.log("race/model")] == list(range(workers, 0, -1))
    ring = v.catalog.keyring_for("race")
    assert ring is not None
    assert _keyring_dirs(v) == {"owner", ring}  # losers removed their key slots
    for number, source, _ in outcomes:
        dest = tmp_path / f"out-v{number}"
        v.pull(f"race/model@v{number}", dest)
        assert snapshot(dest) == snapshot(Path(source)), f"v{number} is not what its pusher sent"
    report = v.check(read_data=True)
    assert report.ok, report.problems


def test_two_processes_create_one_namespace(make_vault: MakeVault, tmp_path: Path) -> None:
    v = make_vault()
    jobs = [
        (write_random(tmp_path / f"f{i}.bin", 400_000, seed=110 + i), f"fresh/artifact-{i}") for i in range(2)
    ]

    outcomes = _run_pushers(v.backend.url, None, jobs)

    assert sorted(number for number, _, _ in outcomes) == [1, 1]
    ring = v.catalog.keyring_for("fresh")
    assert ring is not None and v.catalog.all_keyrings() == {"fresh": ring}
    assert _keyring_dirs(v) == {"owner", ring}
    for i, (src, artifact) in enumerate(jobs):
        assert v.resolve(artifact).ring_id == ring
        v.pull(artifact, tmp_path / f"back{i}.bin")
        assert (tmp_path / f"back{i}.bin").read_bytes() == src.read_bytes()
    assert v.check(read_data=True).ok
