"""Benchmark: what the access policy and the trust policy add to a pull of a 1,000-file version.

    .venv/bin/python benchmarks/bench_access.py [--files 1000] [--runs 9] [--catalog URL]

Three vaults hold the same version ``team/model@v1`` of ``--files`` small files (1–8 KiB, in 10
directories), and each is pulled by a reader opening it with an identity (an x25519 slot on keyring
``team``):

- ``plain``: no access policy and no trust policy; the reader's slot was added with
  ``Vault.add_recipient`` (single-user mode: nothing to check);
- ``access``: an admin-signed access policy of 8 principals and 12 rules (grants, denies, a finer
  glob, ``+``, ``admin`` on ``*``); the reader is a principal holding ``read`` on ``team/*`` (its
  slot comes from that grant), with a deny on ``team/secret/*`` that does not match;
- ``access+trust``: the same, plus a trust policy requiring one signature on ``team/*`` and the
  version signed by the trusted key (what ``mlvault pull`` checks before writing a byte).

Each run pulls every vault once, in turn (so load on a shared machine hits all three alike), two
ways: through the library as the CLI calls it (``open_vault(identity=..., client_state=...)``, then
``Vault.pull`` with the trust policy's pull verifier, then close) and through ``mlvault pull`` run
in this process (imports warm, so the figure is the command's own work, not Python start-up). The
overhead is the difference of the medians against ``plain``, in wall time and in this process's
CPU time (all threads; on a loaded machine it moves far less than wall time). Then each check of
the pull path is timed alone, as the reader on a freshly opened vault: the capability gate
(``Vault.require``), the version's provenance record (``Vault.provenance.check``) and its signature
against the trust policy.

The script uses the public API (and those two facade attributes when present), so it measures
whatever checks the library and the CLI make when it runs; it prints which of them it found.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
PASSPHRASE = "bench access"
REF = "team/model@v1"
CONFIGS = ("plain", "access", "access+trust")
# (principal, pattern, capabilities or None for a deny) — 12 rules over 8 principals.
RULES = (
    ("reader", "team/*", "read"),
    ("reader", "team/secret/*", None),
    ("alice", "team/*", "read,push,tag"),
    ("bob", "research/*", "read"),
    ("bob", "team/+", "list"),
    ("carol", "*", "admin"),
    ("dave", "team/vision/+", "push"),
    ("erin", "team/model", "read"),
    ("erin", "research/*", None),
    ("frank", "research/*", "read,sign"),
    ("ci", "team/*", "push,tag"),
    ("ci", "team/secret/*", None),
)


def make_files(root: Path, count: int) -> int:
    """``count`` random files of 1–8 KiB in 10 directories; returns their total size."""
    total = 0
    for i in range(count):
        path = root / f"shard-{i % 10}" / f"file-{i:05d}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        size = 1024 * (1 + i % 8)
        path.write_bytes(os.urandom(size))
        total += size
    return total


def build(work: Path, files: int, catalog: str | None) -> dict[str, Path]:
    """The three vaults; the reader identity and the admin key live in this client's state."""
    import vault
    from vault import attestation
    from vault.access.patterns import parse_capabilities
    from vault.clientstate import ClientState
    from vault.crypto.kdf import KdfParams
    from vault.signing import keys
    from vault.signing.signers import LocalSigner

    cheap = KdfParams(1, 8, 1)
    state = ClientState.default()
    ids = state.identities()
    publics = {name: ids.create(name, None, cheap) for name in sorted({r[0] for r in RULES})}
    signer = LocalSigner(keys.generate_private_key())
    src = work / "src"
    size = make_files(src, files)
    small = work / "small"
    small.mkdir()
    (small / "weights.bin").write_bytes(os.urandom(1024))
    print(f"version: {files:,} files, {size / 1024:,.0f} KiB", file=sys.stderr)

    paths = {}
    for n, config in enumerate(CONFIGS):
        path = paths[config] = work / f"vault-{n}"
        url = catalog_for(catalog, n)
        with vault.init_vault(
            str(path), passphrase=PASSPHRASE, kdf=cheap, catalog_url=url, client_state=state
        ) as v:
            # Both keyrings exist before any grant; the measured version is pushed under the policy
            # (so it carries whatever provenance a push under a policy writes), then signed.
            v.push(small, "team/placeholder")
            v.push(small, "research/model")
            admin = admin_signer(v, state)
            if config == "plain":
                v.add_recipient(publics["reader"], "team")
            else:
                control = v.access(state)
                for name, public in publics.items():
                    control.add_principal(name, public, admin, kind="service" if name == "ci" else "user")
                for name, pattern, caps in RULES:
                    if caps is None:
                        control.deny(name, pattern, admin)
                    else:
                        control.grant(name, pattern, parse_capabilities(caps), admin)
            v.push(src, "team/model")
            if config == "access+trust":
                service = attestation.for_vault(v, state.trust_pins)
                service.trust_add("team/*", signer.public_key_pem(), admin)
                service.sign(REF, signer, "release-bot")
    return paths


def admin_signer(v: Any, state: Any) -> Any:
    """The root admin: the owner identity when this client pinned one at init, else a fresh key
    (pinned on first use)."""
    from vault.access.service import access_pins
    from vault.signing import keys
    from vault.signing.signers import LocalSigner

    vault_id = v.config.vault_id
    if access_pins(state).admins(vault_id) or state.trust_pins.admins(vault_id):
        from vault.keys import owner_identity  # type: ignore[attr-defined]

        return owner_identity.owner_signer(v.keys, v.backend)
    return LocalSigner(keys.generate_private_key())


def catalog_for(catalog: str | None, n: int) -> str | None:
    """One catalog per vault: a schema-free PostgreSQL URL gets a ``?options`` search path per vault."""
    if catalog is None:
        return None
    return f"{catalog}{'&' if '?' in catalog else '?'}options=-csearch_path%3Dbench_access_{n}"


def library_pull(path: Path, dest: Path, catalog: str | None) -> None:
    import vault
    from vault import attestation
    from vault.clientstate import ClientState

    state = ClientState.default()

    def identity() -> Any:
        return state.identities().load("reader", None)

    with vault.open_vault(str(path), identity=identity, client_state=state, catalog_url=catalog) as v:
        v.unlock()
        check = attestation.for_vault(v, state.trust_pins).pull_verifier()
        v.pull(REF, dest, verifier=check)


def cli_pull(path: Path, dest: Path, catalog: str | None) -> None:
    from mlvault_cli.main import main

    argv = ["mlvault", "--vault", str(path), "--identity", "reader"]
    if catalog:
        argv += ["--catalog", catalog]
    sys.argv = [*argv, "pull", "-q", REF, str(dest)]
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main()
            code: object = 0
        except SystemExit as exc:
            code = exc.code
    if code not in (0, None):
        raise SystemExit(f"mlvault pull failed (exit {code}): {err.getvalue().strip()}")


def timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def timed_cpu(fn: Callable[[], object]) -> tuple[float, float]:
    """Wall seconds and this process's CPU seconds (all threads): CPU moves less with the load."""
    started, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - started, time.process_time() - cpu


def checks_found() -> list[str]:
    """Which pull-time checks this tree makes (read from the source of ``Vault.pull``/``resolve``)."""
    import inspect

    import vault

    source = inspect.getsource(vault.Vault.pull) + inspect.getsource(vault.Vault.resolve)
    found = ["trust-policy signatures (mlvault pull's verifier; only where a trust rule covers the artifact)"]
    if "require(" in source:
        found.append("capability gate (Vault.pull: policy read + admin signature check + rule match)")
    else:
        found.append("NO capability gate in Vault.pull")
    if "provenance" in source or "record" in source:
        found.append("provenance records (checked on pull/resolve)")
    else:
        found.append("NO provenance check in Vault.pull/resolve")
    return found


def check_costs(paths: dict[str, Path], catalog: str | None, repeat: int) -> list[tuple[str, float]]:
    """Each check of the pull path alone, as the reader on a freshly opened vault (what one pull pays)."""
    import vault
    from vault import attestation
    from vault.clientstate import ClientState

    state = ClientState.default()
    n = CONFIGS.index("access+trust")
    gate: list[float] = []
    provenance: list[float] = []
    trust: list[float] = []
    for _ in range(repeat):
        with vault.open_vault(
            str(paths["access+trust"]),
            identity=lambda: state.identities().load("reader", None),
            client_state=state,
            catalog_url=catalog_for(catalog, n),
        ) as v:
            if hasattr(v, "require"):
                gate.append(timed(lambda: v.require("read", REF, action="pull")))
            version = v.catalog.resolve("team/model", number=1, tag=None, digest_prefix=None)
            if hasattr(v, "provenance"):
                provenance.append(timed(lambda: v.provenance.check(version, None)))  # noqa: B023
            manifest = v.load_manifest(version)
            service = attestation.for_vault(v, state.trust_pins)
            trust.append(timed(lambda: service.verify_for_pull(version, manifest)))  # noqa: B023
    found = [
        ("capability gate: Vault.require(read), first in the vault", gate),
        ("provenance: the version's record checked", provenance),
        ("trust: the version's signature verified for the pull", trust),
    ]
    return [(label, statistics.median(values)) for label, values in found if values]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=9, help="pulls of each vault each way (median)")
    parser.add_argument("--catalog", default=None, help="a PostgreSQL URL (default: SQLite in each vault)")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    sys.path.insert(0, str(REPO_ROOT))
    work = Path(tempfile.mkdtemp(prefix="bench-access-", dir=args.workdir))
    os.environ["MLVAULT_CONFIG_DIR"] = str(work / "client")
    for name in ("MLVAULT_VAULT", "MLVAULT_CATALOG", "MLVAULT_PASSPHRASE", "MLVAULT_IDENTITY"):
        os.environ.pop(name, None)
    try:
        if args.catalog:
            create_schemas(args.catalog)
        paths = build(work, args.files, args.catalog)
        found = checks_found()
        ways = {"library": library_pull, "mlvault pull": cli_pull}
        times: dict[tuple[str, str], list[tuple[float, float]]] = {(w, c): [] for w in ways for c in CONFIGS}
        for run in range(args.runs + 1):  # run 0 warms imports and caches; not counted
            for way, pull in ways.items():
                for n, config in enumerate(CONFIGS):
                    dest = work / "out"
                    took = timed_cpu(lambda: pull(paths[config], dest, catalog_for(args.catalog, n)))  # noqa: B023
                    if sum(1 for p in dest.rglob("*") if p.is_file()) != args.files:
                        raise SystemExit(f"{config}: the pull did not write {args.files} files")
                    shutil.rmtree(dest)
                    if run:
                        times[way, config].append(took)
        report(args, found, times, check_costs(paths, args.catalog, 3 * args.runs))
    finally:
        if args.catalog:
            drop_schemas(args.catalog)
        shutil.rmtree(work, ignore_errors=True)


def report(
    args: argparse.Namespace,
    found: list[str],
    times: dict[tuple[str, str], list[tuple[float, float]]],
    alone: list[tuple[str, float]],
) -> None:
    where = "PostgreSQL" if args.catalog else "SQLite"
    cores = os.cpu_count()
    print(f"pull of {args.files:,} files by a principal with an identity; {where} catalog; {cores} cores")
    print("checks in this tree: " + "; ".join(found))
    print(f"median of {args.runs} runs, wall and CPU of this process (ms); overhead against plain")
    for way in ("library", "mlvault pull"):
        base_wall = statistics.median(t[0] for t in times[way, "plain"])
        base_cpu = statistics.median(t[1] for t in times[way, "plain"])
        for config in CONFIGS:
            wall = statistics.median(t[0] for t in times[way, config])
            cpu = statistics.median(t[1] for t in times[way, config])
            extra = ""
            if config != "plain":
                extra = (
                    f"  overhead wall {1000 * (wall - base_wall):+7.1f}, CPU {1000 * (cpu - base_cpu):+6.1f}"
                )
            print(f"  {way:<13} {config:<13} wall {1000 * wall:7.1f}  CPU {1000 * cpu:7.1f}{extra}")
    print("each check alone, as the reader on a freshly opened vault (median, ms):")
    for label, seconds in alone:
        print(f"  {label:<58} {1000 * seconds:7.2f}")


def create_schemas(catalog: str) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(catalog)
    with engine.begin() as conn:
        for n in range(len(CONFIGS)):
            conn.execute(text(f"DROP SCHEMA IF EXISTS bench_access_{n} CASCADE"))
            conn.execute(text(f"CREATE SCHEMA bench_access_{n}"))
    engine.dispose()


def drop_schemas(catalog: str) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(catalog)
    with engine.begin() as conn:
        for n in range(len(CONFIGS)):
            conn.execute(text(f"DROP SCHEMA IF EXISTS bench_access_{n} CASCADE"))
    engine.dispose()


if __name__ == "__main__":
    main()
