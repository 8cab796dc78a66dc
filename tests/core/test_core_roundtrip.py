"""Push then pull gives back exactly what was pushed: bytes, tree, empty entries, names and modes."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from corehelpers import PASSPHRASE, listing, sha256_file, snapshot, write_random

import vault
from vault.formats.config import ChunkerParams

MakeVault = Callable[..., vault.Vault]


def _round_trip(v: vault.Vault, src: Path, artifact: str, dest: Path) -> vault.service.PullResult:
    pushed = v.push(src, artifact)
    pulled = v.pull(f"{artifact}@v{pushed.number}", dest)
    assert pulled.digest == pushed.digest
    assert Path(pulled.destination) == dest
    assert snapshot(dest) == snapshot(src)
    return pulled


def _chunk_sizes() -> list[tuple[str, int]]:
    params = ChunkerParams()
    return [
        ("zero", 0),
        ("one", 1),
        ("min-1", params.min_size - 1),
        ("min", params.min_size),
        ("max", params.max_size),
        ("max+1", params.max_size + 1),
    ]


@pytest.mark.parametrize(("label", "size"), _chunk_sizes(), ids=[label for label, _ in _chunk_sizes()])
def test_single_file_sizes_round_trip(
    local_vault: vault.Vault, tmp_path: Path, label: str, size: int
) -> None:
    assert local_vault.config.chunker == ChunkerParams()  # the sizes above are this vault's boundaries
    src = write_random(tmp_path / "src" / f"{label}.bin", size, seed=size)
    pushed = local_vault.push(src, "team/sizes")
    assert (pushed.size, pushed.files) == (size, 1)
    dest = tmp_path / "out.bin"
    pulled = local_vault.pull("team/sizes", dest)
    assert dest.is_file()
    assert dest.stat().st_size == size
    assert sha256_file(dest) == sha256_file(src) == pulled.sha256[src.name]


def test_nested_directory_with_empty_files_and_dirs(local_vault: vault.Vault, tmp_path: Path) -> None:
    src = tmp_path / "model"
    write_random(src / "weights" / "layer0.safetensors", 700_000, seed=1)
    write_random(src / "weights" / "deep" / "er" / "layer1.bin", 5_000, seed=2)
    (src / "config.json").write_text('{"hidden": 768}\n')
    (src / "empty.txt").write_bytes(b"")
    (src / "weights" / "deep" / "empty.bin").write_bytes(b"")
    (src / "no-files-here" / "nor-here").mkdir(parents=True)
    (src / "empty-dir").mkdir()

    pulled = _round_trip(local_vault, src, "team/nested", tmp_path / "out")
    assert pulled.files == 5
    assert (tmp_path / "out" / "no-files-here" / "nor-here").is_dir()
    assert (tmp_path / "out" / "empty.txt").read_bytes() == b""
    assert listing(tmp_path) == {"model", "out", "vault-0"}  # no staging directory left behind


def test_empty_directory_round_trip(local_vault: vault.Vault, tmp_path: Path) -> None:
    src = tmp_path / "nothing"
    src.mkdir()
    pulled = _round_trip(local_vault, src, "team/nothing", tmp_path / "out")
    assert (pulled.files, pulled.size) == (0, 0)
    assert list((tmp_path / "out").iterdir()) == []


def test_unicode_and_space_names_round_trip(local_vault: vault.Vault, tmp_path: Path) -> None:
    src = tmp_path / "naïve model"
    write_random(src / "poids du modèle" / "ファイル 1.bin", 3000, seed=3)
    write_random(src / "Модель" / "emoji 🚀 name.txt", 10, seed=4)
    write_random(src / " leading and trailing " / "tab\tand%20.bin", 20, seed=5)
    (src / "데이터 비어 있음").mkdir()
    _round_trip(local_vault, src, "team/unicode", tmp_path / "sortie ü")

    single = write_random(tmp_path / "ünï cödé file.bin", 100, seed=6)
    local_vault.push(single, "team/unicode-file")
    into = tmp_path / "into"
    into.mkdir()
    local_vault.pull("team/unicode-file", into)
    assert (into / "ünï cödé file.bin").read_bytes() == single.read_bytes()


def test_file_and_directory_modes_round_trip(local_vault: vault.Vault, tmp_path: Path) -> None:
    src = tmp_path / "modes"
    modes = {"run.sh": 0o755, "secret.key": 0o600, "shared.txt": 0o640, "sub/readonly.txt": 0o444}
    for name, mode in modes.items():
        write_random(src / name, 64, seed=len(name))
        os.chmod(src / name, mode)
    (src / "private").mkdir()
    write_random(src / "private" / "inner.bin", 10, seed=9)
    os.chmod(src / "private", 0o700)
    os.chmod(src / "sub", 0o750)

    _round_trip(local_vault, src, "team/modes", tmp_path / "out")
    out = snapshot(tmp_path / "out")
    assert {name: out[name][1] for name in modes} == modes
    assert out["private"][1] == 0o700
    assert out["sub"][1] == 0o750

    single = write_random(tmp_path / "tool", 32, seed=10)
    os.chmod(single, 0o751)
    local_vault.push(single, "team/tool")
    local_vault.pull("team/tool", tmp_path / "tool-out")
    assert snapshot(tmp_path / "tool-out")["."][1] == 0o751


def test_same_content_twice_stores_no_new_pack(local_vault: vault.Vault, tmp_path: Path) -> None:
    src = tmp_path / "data"
    write_random(src / "a.bin", 6 << 20, seed=11)
    write_random(src / "b" / "c.bin", 300_000, seed=12)
    first = local_vault.push(src, "team/twice")
    assert first.packs >= 1 and first.stored_bytes >= first.size
    packs_before = sorted(local_vault.backend.list("packs/"))

    second = local_vault.push(src, "team/twice")
    assert second.number == first.number + 1
    assert second.digest == first.digest
    assert (second.packs, second.stored_bytes, second.new_chunks) == (0, 0, 0)
    assert second.reused_chunks == first.new_chunks + first.reused_chunks
    assert sorted(local_vault.backend.list("packs/")) == packs_before

    # The same bytes under another artifact of the same namespace share the keyring: no new pack either.
    third = local_vault.push(src / "a.bin", "team/copy-of-a")
    assert (third.packs, third.stored_bytes) == (0, 0)
    assert sorted(local_vault.backend.list("packs/")) == packs_before
    local_vault.pull("team/twice@v1", tmp_path / "v1")
    assert snapshot(tmp_path / "v1") == snapshot(src)


def test_other_namespace_does_not_share_chunks(local_vault: vault.Vault, tmp_path: Path) -> None:
    src = write_random(tmp_path / "a.bin", 500_000, seed=13)
    local_vault.push(src, "team/a")
    other = local_vault.push(src, "lab/a")
    assert other.new_chunks >= 1 and other.packs == 1  # another keyring: dedup scope ends here
    assert local_vault.catalog.keyring_for("team") != local_vault.catalog.keyring_for("lab")


def test_single_file_pulls_to_file_path_or_into_directory(local_vault: vault.Vault, tmp_path: Path) -> None:
    src = write_random(tmp_path / "model.bin", 1234, seed=14)
    local_vault.push(src, "team/single")

    as_file = local_vault.pull("team/single", tmp_path / "renamed.bin")
    assert Path(as_file.destination) == tmp_path / "renamed.bin"
    assert (tmp_path / "renamed.bin").read_bytes() == src.read_bytes()

    target_dir = tmp_path / "existing"
    target_dir.mkdir()
    (target_dir / "neighbour.txt").write_text("stays")
    into_dir = local_vault.pull("team/single", target_dir)
    assert Path(into_dir.destination) == target_dir / "model.bin"
    assert (target_dir / "model.bin").read_bytes() == src.read_bytes()
    assert listing(target_dir) == {"model.bin", "neighbour.txt"}


def test_references_select_versions(local_vault: vault.Vault, tmp_path: Path) -> None:
    first = local_vault.push(
        write_random(tmp_path / "x1", 100, seed=15),
        "team/refs",
        tags=["prod"],
        metadata={"framework": "torch"},
    )
    second = local_vault.push(write_random(tmp_path / "x2", 100, seed=16), "team/refs")
    assert (first.number, second.number) == (1, 2)
    expected = {
        "team/refs": second,
        "team/refs@v1": first,
        "team/refs@prod": first,
        f"team/refs@sha256:{second.digest[:12]}": second,
        f"team/refs@sha256:{first.digest}": first,
    }
    for i, (ref, pushed) in enumerate(expected.items()):
        pulled = local_vault.pull(ref, tmp_path / f"out{i}")
        assert (pulled.number, pulled.digest) == (pushed.number, pushed.digest), ref
    details = local_vault.show("team/refs@prod")
    assert details.metadata == {"framework": "torch"}
    assert details.version.tags == ("prod",)

    local_vault.tag("team/refs@v2", "prod")
    assert local_vault.resolve("team/refs@prod").number == 2


def test_round_trip_on_each_catalog(make_vault: MakeVault, catalog_url: str | None, tmp_path: Path) -> None:
    v = make_vault(catalog_url=catalog_url)
    src = tmp_path / "src"
    write_random(src / "w.bin", 2 << 20, seed=17)
    (src / "empty").mkdir()
    _round_trip(v, src, "team/any-catalog", tmp_path / "out")
    again = v.push(src, "team/any-catalog")
    assert (again.number, again.packs) == (2, 0)
    assert v.check(read_data=True).ok


def test_reopened_vault_pulls_what_was_pushed(make_vault: MakeVault, tmp_path: Path) -> None:
    v = make_vault()
    src = write_random(tmp_path / "w.bin", 300_000, seed=18)
    pushed = v.push(src, "team/reopen")
    url = v.backend.url
    v.close()
    with vault.open_vault(url, passphrase=PASSPHRASE) as reopened:
        pulled = reopened.pull("team/reopen", tmp_path / "back.bin")
    assert pulled.digest == pushed.digest
    assert (tmp_path / "back.bin").read_bytes() == src.read_bytes()
