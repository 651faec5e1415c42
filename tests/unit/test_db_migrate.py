"""Migration files and the rules for what may be applied (no database needed)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from leap.db.migrate import Migration, MigrationError, load_migrations, pending


def write(directory: Path, **files: str) -> Path:
    for name, sql in files.items():
        (directory / name).write_text(sql)
    return directory


def test_shipped_migrations_are_numbered_from_one_without_gaps() -> None:
    shipped = load_migrations()
    assert [m.version for m in shipped] == list(range(1, len(shipped) + 1))
    assert shipped[0].name == "0001_history_audit.sql"
    assert all(m.sql.strip() for m in shipped)


def test_files_load_in_version_order_and_other_files_are_ignored(tmp_path: Path) -> None:
    write(
        tmp_path,
        **{"0010_b.sql": "B", "0002_a.sql": "A", "README.md": "not sql", "0001_c.sql": "C"},
    )
    assert [m.name for m in load_migrations(tmp_path)] == ["0001_c.sql", "0002_a.sql", "0010_b.sql"]


@pytest.mark.parametrize("name", ["1_a.sql", "0001-a.sql", "0001_A.sql", "0001_.sql", "x.sql"])
def test_misnamed_file_is_refused(tmp_path: Path, name: str) -> None:
    write(tmp_path, **{name: "SELECT 1"})
    with pytest.raises(MigrationError, match=re.escape("NNNN_words.sql")):
        load_migrations(tmp_path)


def test_two_files_with_one_version_are_refused(tmp_path: Path) -> None:
    write(tmp_path, **{"0001_a.sql": "A", "0001_b.sql": "B"})
    with pytest.raises(MigrationError, match="share a version"):
        load_migrations(tmp_path)


def test_checksum_follows_the_text() -> None:
    one = Migration(1, "0001_a.sql", "CREATE TABLE a (id int);")
    assert one.checksum == Migration(1, "0001_a.sql", "CREATE TABLE a (id int);").checksum
    assert one.checksum != Migration(1, "0001_a.sql", "CREATE TABLE a (id int); ").checksum
    assert len(one.checksum) == 64


ONE, TWO, THREE = (Migration(n, f"000{n}_m.sql", f"SELECT {n}") for n in (1, 2, 3))


def test_pending_is_what_is_not_applied_in_order() -> None:
    assert pending([ONE, TWO, THREE], {}) == [ONE, TWO, THREE]
    assert pending([ONE, TWO, THREE], {1: ONE.checksum}) == [TWO, THREE]
    assert pending([ONE, TWO, THREE], {1: ONE.checksum, 2: TWO.checksum, 3: THREE.checksum}) == []


def test_changed_applied_file_is_refused() -> None:
    with pytest.raises(
        MigrationError, match=re.escape("0001_m.sql was changed after it was applied")
    ):
        pending([ONE, TWO], {1: "0" * 64})


def test_database_newer_than_the_code_is_refused() -> None:
    with pytest.raises(MigrationError, match="0003, which this LEAP does not ship"):
        pending([ONE, TWO], {1: ONE.checksum, 3: THREE.checksum})


def test_new_file_numbered_below_an_applied_one_is_refused() -> None:
    with pytest.raises(
        MigrationError, match=re.escape("0002_m.sql numbered below the applied 0003")
    ):
        pending([ONE, TWO, THREE], {1: ONE.checksum, 3: THREE.checksum})
