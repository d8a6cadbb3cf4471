"""DailySizeRotatingFile: daily names, size cap with backups, never a split line."""

from __future__ import annotations

import calendar
import os
from pathlib import Path

import pytest

from hapa_telemetry.logs.files import DailySizeRotatingFile


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def _utc(y: int, m: int, d: int, hh: int = 0, mm: int = 0, ss: float = 0) -> float:
    return calendar.timegm((y, m, d, hh, mm, 0, 0, 0, 0)) + ss


def _lines(n: int, width: int = 20, tag: str = "l") -> list[bytes]:
    return [f"{tag}{i:06d}".ljust(width - 1, ".").encode() + b"\n" for i in range(n)]


def _all_lines(directory: Path) -> list[bytes]:
    out: list[bytes] = []
    for p in sorted(directory.glob("*.log*")):
        out.extend(p.read_bytes().splitlines(keepends=True))
    return out


def test_creates_directory_and_daily_name(tmp_path: Path) -> None:
    """The directory is created and the file is <prefix>YYYYMMDD.log for the current day."""
    clock = Clock(_utc(2024, 12, 28, 10, 30))
    f = DailySizeRotatingFile(tmp_path / "a" / "b", "hapa_", 0, 3, clock=clock)
    f.write(b"one\n")
    f.close()
    assert (tmp_path / "a" / "b" / "hapa_20241228.log").read_bytes() == b"one\n"


def test_rolls_over_at_midnight_in_a_running_process(tmp_path: Path) -> None:
    """A write after midnight goes to the next day's file without restarting anything."""
    clock = Clock(_utc(2024, 12, 31, 23, 59, 59.9))
    f = DailySizeRotatingFile(tmp_path, "hapa_", 0, 3, clock=clock)
    f.write(b"before\n")
    clock.t = _utc(2025, 1, 1, 0, 0, 0.1)
    f.write(b"after\n")
    f.close()
    assert (tmp_path / "hapa_20241231.log").read_bytes() == b"before\n"
    assert (tmp_path / "hapa_20250101.log").read_bytes() == b"after\n"


def test_local_time_naming(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With utc=False the date is the local date (TZ honoured)."""
    import time

    monkeypatch.setenv("TZ", "Asia/Seoul")
    time.tzset()
    try:
        clock = Clock(_utc(2024, 12, 28, 16, 0))  # 01:00 on the 29th in Seoul
        f = DailySizeRotatingFile(tmp_path, "hapa_", 0, 3, clock=clock, utc=False)
        f.write(b"x\n")
        f.close()
        assert (tmp_path / "hapa_20241229.log").exists()
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


def test_size_cap_rotates_into_numbered_backups(tmp_path: Path) -> None:
    """Past max_bytes the file moves to .1, older ones shift up, the oldest is deleted."""
    clock = Clock(_utc(2024, 12, 28))
    f = DailySizeRotatingFile(tmp_path, "hapa_", 100, 2, clock=clock)
    lines = _lines(25)  # 25 x 20 bytes = 500 bytes = 5 files of 100 bytes
    for line in lines:
        f.write(line)
    f.close()
    base = tmp_path / "hapa_20241228.log"
    names = sorted(p.name for p in tmp_path.glob("hapa_*"))
    assert names == ["hapa_20241228.log", "hapa_20241228.log.1", "hapa_20241228.log.2"]
    for p in (base, Path(f"{base}.1"), Path(f"{base}.2")):
        assert p.stat().st_size <= 100
    # Newest lines in the base file, older in .1, older still in .2.
    assert base.read_bytes() == b"".join(lines[20:25])
    assert Path(f"{base}.1").read_bytes() == b"".join(lines[15:20])
    assert Path(f"{base}.2").read_bytes() == b"".join(lines[10:15])
    assert f.rotations == 4


def test_batch_is_split_only_between_lines(tmp_path: Path) -> None:
    """A batch bigger than the room left is cut at line ends; no line spans two files."""
    clock = Clock(_utc(2024, 12, 28))
    f = DailySizeRotatingFile(tmp_path, "hapa_", 95, 50, clock=clock)
    lines = _lines(40)
    f.write(b"".join(lines[:7]))
    f.write(b"".join(lines[7:]))
    f.close()
    got = _all_lines(tmp_path)
    assert sorted(got) == sorted(lines)
    for p in tmp_path.glob("hapa_*"):
        data = p.read_bytes()
        assert data.endswith(b"\n") and len(data) <= 95


def test_line_longer_than_cap_gets_its_own_file(tmp_path: Path) -> None:
    """A single line larger than max_bytes is written whole, alone in a file."""
    clock = Clock(_utc(2024, 12, 28))
    f = DailySizeRotatingFile(tmp_path, "hapa_", 50, 5, clock=clock)
    big = b"B" * 200 + b"\n"
    f.write(b"small1\n")
    f.write(big + b"small2\n")
    f.close()
    contents = sorted(p.read_bytes() for p in tmp_path.glob("hapa_*"))
    assert contents == sorted([b"small1\n", big, b"small2\n"])


def test_no_size_cap_when_max_bytes_is_zero(tmp_path: Path) -> None:
    """max_bytes <= 0 never rotates."""
    clock = Clock(_utc(2024, 12, 28))
    f = DailySizeRotatingFile(tmp_path, "hapa_", 0, 2, clock=clock)
    for line in _lines(100):
        f.write(line)
    f.close()
    assert [p.name for p in tmp_path.glob("hapa_*")] == ["hapa_20241228.log"]
    assert f.rotations == 0


def test_zero_backups_keeps_the_cap_by_starting_over(tmp_path: Path) -> None:
    """backup_count=0 keeps only the current file, which stays under the cap."""
    clock = Clock(_utc(2024, 12, 28))
    f = DailySizeRotatingFile(tmp_path, "hapa_", 100, 0, clock=clock)
    lines = _lines(12)
    for line in lines:
        f.write(line)
    f.close()
    assert [p.name for p in tmp_path.glob("hapa_*")] == ["hapa_20241228.log"]
    assert (tmp_path / "hapa_20241228.log").read_bytes() == b"".join(lines[10:])


def test_reopens_after_another_writer_rotated(tmp_path: Path) -> None:
    """When another writer renames the file away, this one notices and writes the new file."""
    clock = Clock(_utc(2024, 12, 28))
    a = DailySizeRotatingFile(tmp_path, "hapa_", 60, 5, clock=clock)
    b = DailySizeRotatingFile(tmp_path, "hapa_", 60, 5, clock=clock)
    lines = _lines(9)
    a.write(lines[0])
    b.write(lines[1] + lines[2])  # fills the file (60 bytes)
    a.write(lines[3])  # a rotates
    b.write(lines[4])  # b still holds the old descriptor: must reopen, not write into .1
    a.close()
    b.close()
    base = tmp_path / "hapa_20241228.log"
    assert Path(f"{base}.1").read_bytes() == b"".join(lines[0:3])
    assert base.read_bytes() == lines[3] + lines[4]


def test_recreates_deleted_directory(tmp_path: Path) -> None:
    """If the log directory is removed while running, the next write recreates it."""
    d = tmp_path / "logs"
    clock = Clock(_utc(2024, 12, 28))
    f = DailySizeRotatingFile(d, "error_", 0, 1, clock=clock)
    f.write(b"a\n")
    for p in d.iterdir():
        p.unlink()
    d.rmdir()
    clock.t += 86400  # new day: new file in a directory that no longer exists
    f.write(b"b\n")
    f.close()
    assert (d / "error_20241229.log").read_bytes() == b"b\n"


def test_write_errors_raise_oserror(tmp_path: Path) -> None:
    """I/O failures surface as OSError for the queue writer to count."""
    d = tmp_path / "ro"
    d.mkdir()
    clock = Clock(_utc(2024, 12, 28))
    f = DailySizeRotatingFile(d, "hapa_", 0, 1, clock=clock)
    (d / "hapa_20241228.log").mkdir()  # the file name is taken by a directory
    with pytest.raises(OSError):
        f.write(b"x\n")
    f.close()


def test_lock_file_is_per_prefix(tmp_path: Path) -> None:
    """Main and error files use separate lock files in the log directory."""
    clock = Clock(_utc(2024, 12, 28))
    DailySizeRotatingFile(tmp_path, "hapa_", 0, 1, clock=clock).write(b"a\n")
    DailySizeRotatingFile(tmp_path, "error_", 0, 1, clock=clock).write(b"b\n")
    names = sorted(os.listdir(tmp_path))
    assert names == [".error_lock", ".hapa_lock", "error_20241228.log", "hapa_20241228.log"]


def test_negative_backup_count_is_rejected(tmp_path: Path) -> None:
    """A negative backup count is a configuration error."""
    with pytest.raises(ValueError, match="backup_count"):
        DailySizeRotatingFile(tmp_path, "hapa_", 10, -1)
