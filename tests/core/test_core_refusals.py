"""Requests the vault must refuse, cleanly and without side effects.

Wrong passphrase, unknown and malformed references, an existing destination, hostile
manifest paths (crafted and sealed with the real keyring, as a key holder gone rogue or a
future bug would produce them), and symbolic links around the destination.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from corehelpers import PASSPHRASE, listing, snapshot, write_random

import vault
from vault.errors import (
    AuthenticationError,
    DestinationExistsError,
    HostileManifestError,
    IntegrityError,
    NotFoundError,
    UsageError,
)
from vault.formats import manifest as manifest_format
from vault.formats import sealed
from vault.formats.manifest import DirEntry, FileEntry, Manifest
from vault.layout import manifest_key
from vault.repository.fetch import ChunkFetcher
from vault.repository.materialize import materialize


@pytest.fixture
def pushed(local_vault: vault.Vault, tmp_path: Path) -> vault.Vault:
    """team/model v1 (a directory) and team/file v1 (a single file) in the local vault."""
    src = tmp_path / "src"
    write_random(src / "weights.bin", 50_000, seed=31)
    write_random(src / "sub" / "config.json", 100, seed=32)
    local_vault.push(src, "team/model", tags=["prod"])
    local_vault.push(write_random(tmp_path / "file.bin", 1000, seed=33), "team/file")
    return local_vault


# -- keys ----------------------------------------------------------------------------------------


def test_wrong_passphrase_is_refused_before_anything_is_read_or_stored(
    pushed: vault.Vault, tmp_path: Path
) -> None:
    url = pushed.backend.url
    packs = sorted(pushed.backend.list("packs/"))
    with vault.open_vault(url, passphrase="not the passphrase") as wrong:
        with pytest.raises(AuthenticationError, match="wrong passphrase"):
            wrong.unlock()
        with pytest.raises(AuthenticationError):
            wrong.pull("team/model", tmp_path / "out")
        with pytest.raises(AuthenticationError):
            wrong.push(tmp_path / "src", "team/model")
        with pytest.raises(AuthenticationError):
            wrong.push(tmp_path / "src", "newspace/model")  # creating a keyring needs the owner key too
        assert wrong.log("team/model")[0].number == 1  # the catalog needs no key
    assert not (tmp_path / "out").exists()
    assert sorted(pushed.backend.list("packs/")) == packs
    assert pushed.catalog.keyring_for("newspace") is None
    with vault.open_vault(url, passphrase=None) as missing, pytest.raises(AuthenticationError):
        missing.pull("team/model", tmp_path / "out")


def test_empty_passphrase_at_init_is_a_usage_error(tmp_path: Path, cheap_kdf: vault.KdfParams) -> None:
    with pytest.raises(UsageError):
        vault.init_vault(str(tmp_path / "v"), passphrase="", kdf=cheap_kdf)


# -- references ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "ref",
    [
        "team/nope",
        "nope/model",
        "team/model@v2",
        "team/model@v999999",
        "team/model@staging",
        "team/model@sha256:000000000000",
    ],
)
def test_unknown_reference(pushed: vault.Vault, tmp_path: Path, ref: str) -> None:
    with pytest.raises(NotFoundError) as info:
        pushed.pull(ref, tmp_path / "out")
    assert "\n" not in str(info.value)
    assert not (tmp_path / "out").exists()
    with pytest.raises(NotFoundError):
        pushed.show(ref)


@pytest.mark.parametrize(
    "ref",
    [
        "",
        "team",
        "team/",
        "/team/model",
        "team//model",
        "team/model@",
        "team/model@v0",
        "team/model@v01",
        "team/model@sha256:abc",
        "team/model@sha256:ABCDEF123456",
        "team/../model",
        "team/./model",
        "team/mo del",
        "team/model@v1@v2",
        "team/model@v1.5",
        ".hidden/model",
        "team/model@sha256:",
    ],
)
def test_malformed_reference(pushed: vault.Vault, tmp_path: Path, ref: str) -> None:
    with pytest.raises(UsageError) as info:
        pushed.pull(ref, tmp_path / "out")
    assert "\n" not in str(info.value)
    assert not (tmp_path / "out").exists()


def test_malformed_push_arguments(local_vault: vault.Vault, tmp_path: Path) -> None:
    src = write_random(tmp_path / "f.bin", 10, seed=34)
    for call in (
        lambda: local_vault.push(src, "no-namespace"),
        lambda: local_vault.push(src, "team/x", tags=["v3"]),
        lambda: local_vault.push(
            src, "team/x", tags=["v1.5"]
        ),  # could never be referenced: @v1.5 is malformed
        lambda: local_vault.push(src, "team/x", tags=["v0"]),
        lambda: local_vault.push(src, "team/x", tags=["sha256:abc"]),
        lambda: local_vault.push(src, "team/x", kind="weights"),
        lambda: local_vault.push(tmp_path / "missing", "team/x"),
    ):
        with pytest.raises(UsageError):
            call()
    assert local_vault.list_artifacts() == []
    assert list(local_vault.backend.list("packs/")) == []


def test_opening_a_missing_vault_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="mlvault init"):
        vault.open_vault(str(tmp_path / "no-vault-here"), passphrase=PASSPHRASE)
    (tmp_path / "empty-dir").mkdir()
    with pytest.raises(NotFoundError, match="mlvault init"):
        vault.open_vault(str(tmp_path / "empty-dir"), passphrase=PASSPHRASE)


# -- destination exists --------------------------------------------------------------------------


def test_existing_destination_is_left_untouched(pushed: vault.Vault, tmp_path: Path) -> None:
    existing_dir = tmp_path / "existing-dir"
    write_random(existing_dir / "mine.txt", 10, seed=35)
    existing_file = write_random(tmp_path / "existing.bin", 10, seed=36)
    empty_dir = tmp_path / "empty-dir"
    empty_dir.mkdir()
    occupied = tmp_path / "occupied"
    write_random(occupied / "file.bin", 5, seed=37)  # the single file's own name is taken

    cases = [
        ("team/model", existing_dir),
        ("team/model", empty_dir),
        ("team/model", existing_file),
        ("team/file", existing_file),
        ("team/file", occupied),
    ]
    before = {path: (snapshot(path), path.stat().st_mtime_ns) for _, path in cases}
    top = listing(tmp_path)
    for ref, dest in cases:
        with pytest.raises(DestinationExistsError, match="already exists"):
            pushed.pull(ref, dest)
    assert {path: (snapshot(path), path.stat().st_mtime_ns) for _, path in cases} == before
    assert listing(tmp_path) == top


# -- hostile manifests ---------------------------------------------------------------------------

HOSTILE_PATHS = [
    "../evil.bin",
    "sub/../../evil.bin",
    "/ABS/evil.bin",
    "./evil.bin",
    "sub//evil.bin",
    "sub\\..\\evil.bin",
    "C:/evil.bin",
    "evil\0.bin",
    "..",
]


def _reseal(v: vault.Vault, ref: str, rewrite: dict[str, object]) -> None:
    """Replace a stored manifest with a crafted one sealed under the real keyring (same version id)."""
    version = v.resolve(ref)
    manifest = v.load_manifest(version)
    doc = {
        "vault_id": manifest.vault_id,
        "version_id": manifest.version_id,
        "artifact": manifest.artifact,
        "kind": manifest.kind,
        "root": manifest.root,
        "created_at": manifest.created_at,
        "created_by": manifest.created_by,
        "files": manifest.files,
        "dirs": manifest.dirs,
    }
    doc.update(rewrite)
    crafted = manifest_format.encode(Manifest(**doc))  # type: ignore[arg-type]
    keyring = v.keys.keyring(version.ring_id)
    blob = sealed.seal(
        sealed.MANIFEST,
        keyring.dek(keyring.epoch),
        keyring.ring_id,
        keyring.epoch,
        bytes.fromhex(version.id),
        crafted,
    )
    path = Path(v.backend.root) / manifest_key(version.id)  # type: ignore[attr-defined]
    path.write_bytes(blob)


def but_catalog(snap: dict[str, tuple[str, int, str]]) -> dict[str, tuple[str, int, str]]:
    """A snapshot without the catalog file, which now holds the refused pull's audit row."""
    return {path: entry for path, entry in snap.items() if "catalog.sqlite" not in path}


@pytest.mark.parametrize("hostile", HOSTILE_PATHS)
def test_sealed_manifest_with_hostile_file_path_is_refused(
    pushed: vault.Vault, tmp_path: Path, hostile: str
) -> None:
    manifest = pushed.load_manifest(pushed.resolve("team/model"))
    evil = FileEntry(
        hostile.replace("/ABS", str(tmp_path)),
        *[getattr(manifest.files[0], f) for f in ("size", "mode", "sha256", "chunks")],
    )
    _reseal(pushed, "team/model", {"files": (evil, *manifest.files[1:])})
    work = tmp_path / "work"
    work.mkdir()
    before = snapshot(tmp_path)

    with pytest.raises(HostileManifestError, match=r"escape|not a valid"):
        pushed.pull("team/model", work / "out")
    assert but_catalog(snapshot(tmp_path)) == but_catalog(before)  # nothing written anywhere
    assert pushed.audit.rows()[-1].outcome == "failed"  # only the refused pull's audit row
    report = pushed.check(read_data=True)
    assert "team/model@v1: (all files)" in report.damaged_files


@pytest.mark.parametrize("hostile", ["../up", "/ABS/dir", "a/../../up"])
def test_sealed_manifest_with_hostile_dir_path_is_refused(
    pushed: vault.Vault, tmp_path: Path, hostile: str
) -> None:
    manifest = pushed.load_manifest(pushed.resolve("team/model"))
    _reseal(
        pushed,
        "team/model",
        {"dirs": (*manifest.dirs, DirEntry(hostile.replace("/ABS", str(tmp_path)), 0o755))},
    )
    work = tmp_path / "work"
    work.mkdir()
    before = snapshot(tmp_path)
    with pytest.raises(HostileManifestError):
        pushed.pull("team/model", work / "out")
    assert but_catalog(snapshot(tmp_path)) == but_catalog(before)


def test_sealed_manifest_with_file_below_file_or_symlink_entry_is_refused(
    pushed: vault.Vault, tmp_path: Path
) -> None:
    manifest = pushed.load_manifest(pushed.resolve("team/model"))
    first = manifest.files[0]
    below = FileEntry(f"{first.path}/passwd", first.size, first.mode, first.sha256, first.chunks)
    _reseal(pushed, "team/model", {"files": (first, below)})
    with pytest.raises(HostileManifestError, match="below file"):
        pushed.pull("team/model", tmp_path / "out")

    # There is no symlink entry type: a crafted one is refused rather than followed.
    plaintext = manifest_format.encode(manifest).replace(b'"type":"dir"', b'"type":"symlink","target":"/"', 1)
    assert b"symlink" in plaintext
    version = pushed.resolve("team/model")
    keyring = pushed.keys.keyring(version.ring_id)
    blob = sealed.seal(
        sealed.MANIFEST, keyring.dek(0), keyring.ring_id, 0, bytes.fromhex(version.id), plaintext
    )
    (Path(pushed.backend.root) / manifest_key(version.id)).write_bytes(blob)  # type: ignore[attr-defined]
    with pytest.raises(IntegrityError, match="entry type"):
        pushed.pull("team/model", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def _materialize(v: vault.Vault, manifest: Manifest, dest: Path) -> None:
    ring = v.resolve(f"{manifest.artifact}@v1").ring_id
    with ThreadPoolExecutor(2) as pool:
        fetcher = ChunkFetcher(v.backend, v.keys.keyring(ring), pool)
        materialize(manifest, dest, fetcher, lambda ids: v.catalog.lookup_chunks(ring, ids))


@pytest.mark.parametrize("hostile", [*HOSTILE_PATHS, "ok/../../../evil.bin"])
def test_materialize_rechecks_paths_of_an_unvalidated_manifest(
    pushed: vault.Vault, tmp_path: Path, hostile: str
) -> None:
    """Defence in depth: materialize itself refuses paths that decode() would have refused."""
    manifest = pushed.load_manifest(pushed.resolve("team/model"))
    first = manifest.files[0]
    evil = FileEntry(
        hostile.replace("/ABS", str(tmp_path)), first.size, first.mode, first.sha256, first.chunks
    )
    work = tmp_path / "work"
    work.mkdir()
    before = snapshot(tmp_path)
    for crafted in (
        Manifest(**{**manifest.__dict__, "files": (*manifest.files, evil)}),
        Manifest(**{**manifest.__dict__, "dirs": (DirEntry(evil.path, 0o755),)}),
    ):
        with pytest.raises(HostileManifestError):
            _materialize(pushed, crafted, work / "out")
        assert snapshot(tmp_path) == before


@pytest.mark.parametrize("hostile", ["../evil.bin", "/ABS/evil.bin", "../missing/evil.bin"])
def test_materialize_single_file_name_is_checked_before_use(
    pushed: vault.Vault, tmp_path: Path, hostile: str
) -> None:
    """A single-file version pulled into a directory: its name must not pick the place itself."""
    manifest = pushed.load_manifest(pushed.resolve("team/file"))
    first = manifest.files[0]
    evil = FileEntry(
        hostile.replace("/ABS", str(tmp_path)), first.size, first.mode, first.sha256, first.chunks
    )
    crafted = Manifest(**{**manifest.__dict__, "files": (evil,)})
    into = tmp_path / "work" / "into"
    into.mkdir(parents=True)
    before = snapshot(tmp_path)
    ring = pushed.resolve("team/file@v1").ring_id
    with ThreadPoolExecutor(2) as pool, pytest.raises(HostileManifestError):
        fetcher = ChunkFetcher(pushed.backend, pushed.keys.keyring(ring), pool)
        materialize(crafted, into, fetcher, lambda ids: pushed.catalog.lookup_chunks(ring, ids))
    assert snapshot(tmp_path) == before


def test_materialize_duplicate_and_nested_file_paths_stay_inside(pushed: vault.Vault, tmp_path: Path) -> None:
    manifest = pushed.load_manifest(pushed.resolve("team/model"))
    first = manifest.files[0]
    below = FileEntry(f"{first.path}/x", first.size, first.mode, first.sha256, first.chunks)
    work = tmp_path / "work"
    work.mkdir()
    for files in ((first, first), (first, below)):
        crafted = Manifest(**{**manifest.__dict__, "files": files})
        with pytest.raises(UsageError):
            _materialize(pushed, crafted, work / "out")
        assert listing(work) == set()


# -- symbolic links around the destination ------------------------------------------------------


def test_symlinked_destination_parent_lands_under_the_real_destination(
    pushed: vault.Vault, tmp_path: Path
) -> None:
    real = tmp_path / "elsewhere"
    real.mkdir()
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "link").symlink_to(real, target_is_directory=True)
    result = pushed.pull("team/model", tmp_path / "work" / "link" / "out")
    assert Path(result.destination).resolve() == real / "out"
    assert listing(real) == {"out"}  # no staging directory left
    assert set(snapshot(real / "out")) == {"weights.bin", "sub", "sub/config.json"}
    assert listing(tmp_path / "work") == {"link"}
    for path in (real / "out").rglob("*"):
        assert path.resolve().is_relative_to(real / "out")


def test_symlinks_at_the_destination_are_never_followed(pushed: vault.Vault, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    work = tmp_path / "work"
    work.mkdir()
    (work / "dangling").symlink_to(outside / "created-by-pull")
    (work / "to-dir").symlink_to(outside, target_is_directory=True)
    into = work / "into"
    into.mkdir()
    (into / "file.bin").symlink_to(outside / "file.bin")  # the single file's name, pointing out

    for ref, dest in (
        ("team/model", work / "dangling"),
        ("team/file", work / "dangling"),
        ("team/model", work / "to-dir"),
        ("team/file", into),
    ):
        with pytest.raises(DestinationExistsError):
            pushed.pull(ref, dest)
    assert listing(outside) == set()
    assert os.readlink(work / "dangling") == str(outside / "created-by-pull")
    assert listing(work) == {"dangling", "to-dir", "into"}
    assert listing(into) == {"file.bin"}


def test_missing_destination_parent_is_a_usage_error(pushed: vault.Vault, tmp_path: Path) -> None:
    before = listing(tmp_path)
    with pytest.raises(UsageError, match="create it first"):
        pushed.pull("team/model", tmp_path / "missing" / "out")
    assert listing(tmp_path) == before


def test_push_refuses_special_files_and_directory_symlinks(local_vault: vault.Vault, tmp_path: Path) -> None:
    fifo_dir = tmp_path / "with-fifo"
    write_random(fifo_dir / "ok.bin", 10, seed=38)
    os.mkfifo(fifo_dir / "pipe")
    linked_dir = tmp_path / "with-dir-link"
    write_random(linked_dir / "ok.bin", 10, seed=39)
    (linked_dir / "escape").symlink_to(tmp_path, target_is_directory=True)
    for src, why in (
        (fifo_dir, "not a regular file"),
        (linked_dir, "symbolic link to a directory"),
        (fifo_dir / "pipe", "neither a regular file"),
    ):
        with pytest.raises(UsageError, match=why):
            local_vault.push(src, "team/special")
    assert local_vault.list_artifacts() == []

    # A symlink to a file is pushed as the file it points to, and comes back as a regular file.
    followed = tmp_path / "with-file-link"
    target = write_random(tmp_path / "target.bin", 100, seed=40)
    followed.mkdir()
    (followed / "link.bin").symlink_to(target)
    local_vault.push(followed, "team/followed")
    local_vault.pull("team/followed", tmp_path / "out")
    assert not (tmp_path / "out" / "link.bin").is_symlink()
    assert (tmp_path / "out" / "link.bin").read_bytes() == target.read_bytes()
