"""An attacker with write access to the vault directory: every change is caught before a byte lands.

One template vault is built per module (small chunks, 1 MiB packs, so one artifact spans several
packs) and copied for each test; the test then edits files under the copy directly. For damage
to a chunk record, pull must fail with IntegrityError naming the file that needs the chunk,
leave neither the destination nor a staging directory, and ``check --read-data`` must list
the file as damaged. Damage outside the records (pack header, trailer, footer) cannot reach a
pulled file — pull reads records through the catalog index and authenticates each one — so
pull must succeed with intact bytes while ``check --read-data`` reports the pack.
"""

from __future__ import annotations

import random
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from corehelpers import CHEAP_KDF, PASSPHRASE, flip_byte, listing, pack_layout, snapshot, write_random

import vault
from vault.errors import IntegrityError
from vault.formats import chunk as chunk_format
from vault.formats import pack as pack_format
from vault.formats import sealed
from vault.formats.config import ChunkerParams
from vault.layout import pack_key

SMALL_CHUNKS = ChunkerParams(min_size=16 * 1024, avg_size=64 * 1024, max_size=256 * 1024)
ARTIFACT = "team/model"


@dataclass(frozen=True)
class Template:
    """A built vault and what is known about it."""

    vault_dir: Path
    source_v1: Path
    source_v2: Path
    files_v1: list[tuple[str, list[bytes]]]  # manifest order: path, chunk ids
    files_v2: list[tuple[str, list[bytes]]]
    version_ids: tuple[str, str]


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Template:
    root = tmp_path_factory.mktemp("tamper-template")
    src1 = root / "src-v1"
    src1.mkdir()
    (src1 / "config.json").write_text('{"layers": 12, "hidden": 768, "note": "' + "x" * 2000 + '"}\n')
    write_random(src1 / "weights" / "a.bin", 900_000, seed=21)
    write_random(src1 / "weights" / "b.bin", 900_000, seed=22)
    write_random(src1 / "weights" / "c.bin", 400_000, seed=23)
    (src1 / "empty.txt").write_bytes(b"")
    src2 = root / "src-v2"
    shutil.copytree(src1, src2)
    write_random(src2 / "weights" / "c.bin", 400_000, seed=24)
    with vault.init_vault(
        str(root / "vault"), passphrase=PASSPHRASE, kdf=CHEAP_KDF, chunker=SMALL_CHUNKS, pack_size=1 << 20
    ) as v:
        first = v.push(src1, ARTIFACT)
        second = v.push(src2, ARTIFACT)
        assert first.packs >= 2, "the template must span several packs"
        files = []
        for version_id in (first.version_id, second.version_id):
            manifest = v.load_manifest(v.resolve(f"{ARTIFACT}@v{1 if version_id == first.version_id else 2}"))
            files.append([(f.path, [cid for cid, _ in f.chunks]) for f in manifest.files])
    return Template(root / "vault", src1, src2, files[0], files[1], (first.version_id, second.version_id))


@dataclass
class Victim:
    """A private copy of the template vault, opened."""

    vault: vault.Vault
    dir: Path
    out_parent: Path
    template: Template

    def pack_path(self, pack_id: str) -> Path:
        return self.dir / pack_key(pack_id)

    def packs(self) -> list[str]:
        """Packs holding at least one chunk of v1, sorted (v2's own chunks may sit in a pack of their own)."""
        needed = {cid for _, ids in self.template.files_v1 for cid in ids}
        return sorted(
            p.id
            for p in self.vault.catalog.all_packs()
            if needed & {r.chunk_id for r in self.vault.catalog.pack_chunks(p.id)}
        )

    def files_needing(self, chunk_ids: set[bytes], version: int = 1) -> list[str]:
        files = self.template.files_v1 if version == 1 else self.template.files_v2
        return [path for path, ids in files if chunk_ids & set(ids)]

    def pull_fails(self, ref: str = f"{ARTIFACT}@v1") -> IntegrityError:
        before = listing(self.out_parent)
        dest = self.out_parent / "dest"
        with pytest.raises(IntegrityError) as info:
            self.vault.pull(ref, dest)
        assert not dest.exists() and not dest.is_symlink()
        assert listing(self.out_parent) == before, "a staging directory was left behind"
        return info.value

    def pull_intact(self, version: int = 1) -> None:
        dest = self.out_parent / f"intact-v{version}"
        self.vault.pull(f"{ARTIFACT}@v{version}", dest)
        source = self.template.source_v1 if version == 1 else self.template.source_v2
        assert snapshot(dest) == snapshot(source)
        shutil.rmtree(dest)


@pytest.fixture
def victim(template: Template, tmp_path: Path) -> Iterator[Victim]:
    copy = tmp_path / "vault"
    shutil.copytree(template.vault_dir, copy)
    out = tmp_path / "out"
    out.mkdir()
    with vault.open_vault(str(copy), passphrase=PASSPHRASE) as v:
        yield Victim(v, copy, out, template)


def _assert_check_names(victim: Victim, files: list[str], version: int = 1) -> None:
    report = victim.vault.check(read_data=True)
    assert not report.ok
    for path in files:
        assert f"{ARTIFACT}@v{version}:{path}" in report.damaged_files


def test_untouched_copy_is_healthy(victim: Victim) -> None:
    report = victim.vault.check(read_data=True)
    assert report.ok, report.problems
    assert report.packs_checked == len(victim.vault.catalog.all_packs()) >= 2
    assert report.versions_checked == 2
    victim.pull_intact(1)
    victim.pull_intact(2)


# -- one flipped byte inside a chunk record ---------------------------------------------------

RECORD_OFFSETS = {
    "chunk-magic": 0,
    "chunk-version": 4,
    "chunk-suite": 5,
    "chunk-flags": 6,
    "chunk-keyring": 7 + 3,
    "chunk-epoch": 23 + 3,
    "chunk-id": 27 + 31,
    "chunk-nonce": 59 + 5,
    "chunk-length-high": 71,
    "chunk-length-low": 74,
    "body-first": chunk_format.HEADER_SIZE,
    "body-middle": -2,  # resolved per record: its middle byte
    "body-tag-last": -1,  # resolved per record: its last byte (GCM tag)
}


@pytest.mark.parametrize("where", list(RECORD_OFFSETS))
def test_flipped_byte_in_chunk_record(victim: Victim, where: str) -> None:
    pack = victim.packs()[1]
    layout = pack_layout(victim.pack_path(pack), victim.vault.catalog.pack_chunks(pack))
    used = [record for record in layout.records if victim.files_needing({record.chunk_id})]
    record = used[len(used) // 2]
    cid, offset, length = record.chunk_id, record.offset, record.length
    relative = RECORD_OFFSETS[where]
    relative = {-2: length // 2, -1: length - 1}.get(relative, relative)
    assert 0 <= relative < length
    flip_byte(victim.pack_path(pack), offset + relative)

    victims = victim.files_needing({cid})
    error = victim.pull_fails()
    assert victims[0] in str(error)
    _assert_check_names(victim, victims)


def test_sampled_offsets_anywhere_in_every_pack(victim: Victim, template: Template, tmp_path: Path) -> None:
    """Seeded random offsets over every pack: a record hit fails pull, anything else only check."""
    rng = random.Random(2024)
    for round_no, pack in enumerate(victim.packs()):
        for sample in range(3):
            copy = tmp_path / f"sample-{round_no}-{sample}"
            shutil.copytree(template.vault_dir, copy)
            layout = pack_layout(copy / pack_key(pack), victim.vault.catalog.pack_chunks(pack))
            offset = rng.randrange(layout.size)
            flip_byte(copy / pack_key(pack), offset)
            hit = {r.chunk_id for r in layout.records if r.offset <= offset < r.offset + r.length}
            with vault.open_vault(str(copy), passphrase=PASSPHRASE) as v:
                report = v.check(read_data=True)
                assert not report.ok, f"flip at {offset} of {layout.size} went unnoticed"
                assert any(pack in p for p in report.problems)
                for version, source in ((1, template.source_v1), (2, template.source_v2)):
                    dest = tmp_path / f"dest-{round_no}-{sample}-v{version}"
                    damaged = victim.files_needing(hit, version)
                    if damaged:
                        with pytest.raises(IntegrityError) as info:
                            v.pull(f"{ARTIFACT}@v{version}", dest)
                        assert damaged[0] in str(info.value), offset
                        assert not dest.exists()
                        assert f"{ARTIFACT}@v{version}:{damaged[0]}" in report.damaged_files
                    else:
                        v.pull(f"{ARTIFACT}@v{version}", dest)
                        assert snapshot(dest) == snapshot(source)
                        assert not any(d.startswith(f"{ARTIFACT}@v{version}:") for d in report.damaged_files)
            shutil.rmtree(copy)


# -- one flipped byte outside the records: pull stays correct, check reports ------------------


def _outside_offsets() -> dict[str, object]:
    return {
        "pack-magic": 0,
        "pack-version": 4,
        "pack-reserved": 5,
        "pack-id": 8 + 7,
        "trailer-magic": ("trailer", 0),
        "trailer-version": ("trailer", 4),
        "trailer-keyring": ("trailer", 8 + 2),
        "trailer-object-id": ("trailer", 8 + 16 + 4 + 1),
        "trailer-nonce": ("trailer", 44 + 3),
        "trailer-length": ("trailer", 56 + 3),
        "trailer-ciphertext": ("trailer", sealed.HEADER_SIZE + 5),
        "trailer-tag-last": ("footer", -1),
        "footer-length": ("footer", 3),
        "footer-magic": ("footer", 6),
    }


@pytest.mark.parametrize("where", list(_outside_offsets()))
def test_flipped_byte_outside_records(victim: Victim, where: str) -> None:
    pack = victim.packs()[0]
    path = victim.pack_path(pack)
    layout = pack_layout(path, victim.vault.catalog.pack_chunks(pack))
    spec = _outside_offsets()[where]
    if isinstance(spec, int):
        offset = spec
    else:
        region, relative = spec  # type: ignore[misc]
        offset = (layout.trailer_start if region == "trailer" else layout.footer_start) + relative
    assert offset < pack_format.HEADER_SIZE or offset >= layout.trailer_start
    flip_byte(path, offset)

    victim.pull_intact(1)  # pull authenticates each record it reads; none was touched
    report = victim.vault.check(read_data=True)
    assert not report.ok
    assert any(pack in problem for problem in report.problems), report.problems
    assert report.damaged_files == []  # no chunk is lost: every file is still readable


# -- whole-object attacks ----------------------------------------------------------------------


@pytest.mark.parametrize("keep", ["half", "drop-footer", "nothing"])
def test_truncated_pack(victim: Victim, keep: str) -> None:
    pack = victim.packs()[0]
    path = victim.pack_path(pack)
    layout = pack_layout(path, victim.vault.catalog.pack_chunks(pack))
    new_size = {"half": layout.size // 2, "drop-footer": layout.footer_start, "nothing": 0}[keep]
    with path.open("r+b") as handle:
        handle.truncate(new_size)
    lost = {r.chunk_id for r in layout.records if r.offset + r.length > new_size}

    report = victim.vault.check(read_data=False)
    assert any(pack in p and "catalog recorded" in p for p in report.problems)
    if not lost:  # only the footer went: records intact, pull still correct
        victim.pull_intact(1)
        assert not victim.vault.check(read_data=True).ok
        return
    error = victim.pull_fails()
    assert victim.files_needing(lost)[0] in str(error)
    _assert_check_names(victim, victim.files_needing(lost))


def test_two_packs_swapped(victim: Victim) -> None:
    first, second = victim.packs()[:2]
    a, b = victim.pack_path(first), victim.pack_path(second)
    a_bytes, b_bytes = a.read_bytes(), b.read_bytes()
    a.write_bytes(b_bytes)
    b.write_bytes(a_bytes)
    moved = {r.chunk_id for pack in (first, second) for r in victim.vault.catalog.pack_chunks(pack)}

    error = victim.pull_fails()
    assert victim.files_needing(moved)[0] in str(error)
    report = victim.vault.check(read_data=True)
    assert not report.ok
    assert sum(first in p or second in p for p in report.problems) >= 2
    for path in victim.files_needing(moved):
        assert f"{ARTIFACT}@v1:{path}" in report.damaged_files


def test_pack_overwritten_with_a_copy_of_another(victim: Victim) -> None:
    """Valid records under the wrong pack name: the index's chunk ids and the pack id binding catch it."""
    first, second = victim.packs()[:2]
    victim.pack_path(second).write_bytes(victim.pack_path(first).read_bytes())
    moved = {r.chunk_id for r in victim.vault.catalog.pack_chunks(second)}
    error = victim.pull_fails()
    assert victim.files_needing(moved)[0] in str(error)
    report = victim.vault.check(read_data=True)
    assert any(second in p for p in report.problems)


def test_deleted_pack(victim: Victim) -> None:
    pack = victim.packs()[-1]
    victim.pack_path(pack).unlink()
    lost = {r.chunk_id for r in victim.vault.catalog.pack_chunks(pack)}

    error = victim.pull_fails()
    assert victim.files_needing(lost)[0] in str(error)
    assert "missing" in str(error)
    report = victim.vault.check(read_data=False)  # even the cheap check sees a missing pack
    assert not report.ok
    assert any(pack in p and "missing" in p for p in report.problems)
    _assert_check_names(victim, victim.files_needing(lost))


# -- manifests ---------------------------------------------------------------------------------


def test_manifest_replaced_by_another_versions(victim: Victim, template: Template) -> None:
    v1_id, v2_id = template.version_ids
    (victim.dir / "manifests" / v2_id).write_bytes((victim.dir / "manifests" / v1_id).read_bytes())

    error = victim.pull_fails(f"{ARTIFACT}@v2")
    assert f"{ARTIFACT}@v2" in str(error)
    victim.pull_intact(1)  # the other version is untouched
    report = victim.vault.check(read_data=True)
    assert not report.ok
    assert any(d.startswith(f"{ARTIFACT}@v2") for d in report.damaged_files)
    assert not any(d.startswith(f"{ARTIFACT}@v1") for d in report.damaged_files)


@pytest.mark.parametrize("damage", ["flip-header", "flip-ciphertext", "truncate", "delete"])
def test_manifest_damaged(victim: Victim, template: Template, damage: str) -> None:
    path = victim.dir / "manifests" / template.version_ids[0]
    if damage == "flip-header":
        flip_byte(path, 30)
    elif damage == "flip-ciphertext":
        flip_byte(path, path.stat().st_size - 40)
    elif damage == "truncate":
        path.write_bytes(path.read_bytes()[:-1])
    else:
        path.unlink()

    error = victim.pull_fails(f"{ARTIFACT}@v1")
    assert f"{ARTIFACT}@v1" in str(error)
    report = victim.vault.check(read_data=True)
    assert not report.ok
    assert f"{ARTIFACT}@v1: (all files)" in report.damaged_files
    victim.pull_intact(2)


# -- a catalog writer: the index and version rows are not trusted either -----------------------


def _catalog_sql(victim: Victim, statement: str, **params: object) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(f"sqlite:///{victim.dir / 'catalog.sqlite'}")
    with engine.begin() as conn:
        assert conn.execute(text(statement), params).rowcount >= 1
    engine.dispose()


def test_chunk_index_pointing_elsewhere(victim: Victim) -> None:
    # Any pack holding at least two records will do (packs fill in completion order).
    records = next(
        rs
        for rs in (
            sorted(victim.vault.catalog.pack_chunks(p), key=lambda r: r.offset) for p in victim.packs()
        )
        if len(rs) >= 2
    )
    cid, other_offset, other_length = records[0].chunk_id, records[1].offset, records[1].length
    _catalog_sql(
        victim,
        'UPDATE chunks SET "offset" = :o, length = :n WHERE chunk_id = :c',
        o=other_offset,
        n=other_length,
        c=cid,
    )
    error = victim.pull_fails()
    assert victim.files_needing({cid})[0] in str(error)


def test_version_digest_rewritten_in_catalog(victim: Victim, template: Template) -> None:
    _catalog_sql(
        victim, "UPDATE versions SET digest = :d WHERE id = :i", d="ab" * 32, i=template.version_ids[0]
    )
    error = victim.pull_fails(f"{ARTIFACT}@v1")
    assert f"{ARTIFACT}@v1" in str(error) and "does not match the catalog" in str(error)
    victim.pull_intact(2)


def test_version_row_pointed_at_another_versions_manifest(victim: Victim, template: Template) -> None:
    """Catalog says v1 is v2's manifest object: the sealed object id no longer matches."""
    v1_id, v2_id = template.version_ids
    (victim.dir / "manifests" / v1_id).unlink()
    (victim.dir / "manifests" / v2_id).rename(victim.dir / "manifests" / v1_id)
    error = victim.pull_fails(f"{ARTIFACT}@v1")
    assert f"{ARTIFACT}@v1" in str(error)
    error = victim.pull_fails(f"{ARTIFACT}@v2")
    assert f"{ARTIFACT}@v2" in str(error) and "missing" in str(error)
