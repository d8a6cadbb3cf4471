"""LOG_RETENTION_DAYS: old days' files (and their backups) are deleted at rollover."""

from __future__ import annotations

import calendar
import multiprocessing
from pathlib import Path

import pytest

from hapa_telemetry.logs.files import DailySizeRotatingFile
from hapa_telemetry.settings import Settings, SettingsError


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def _utc(y: int, m: int, d: int, hh: int = 12) -> float:
    return float(calendar.timegm((y, m, d, hh, 0, 0, 0, 0, 0)))


OLD_FILES = (
    "hapa_20250101.log", "hapa_20250101.log.1", "hapa_20250101.log.2.gz",
    "hapa_20250101.log.gz", "error_20250101.log", "error_20250101.log.3",
    "hapa_20250117.log", "hapa_20250118.log", "hapa_20250118.log.1",
)
UNRELATED = ("notes.txt", "hapa_latest.log", "hapa_20251399.log", "other_20250101.log",
             ".hapa_lock")


def _seed(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name in OLD_FILES + UNRELATED:
        (directory / name).write_text("x\n")


def _names(directory: Path) -> set[str]:
    return {p.name for p in directory.iterdir()}


def test_old_days_and_their_backups_are_deleted_at_the_first_write(tmp_path: Path) -> None:
    """With 14 days, on 2025-01-31 the files of 2025-01-17 and earlier go (backups and .gz
    included); 2025-01-18 (the 14th day back, today counted) and unrelated files stay."""
    _seed(tmp_path)
    clock = Clock(_utc(2025, 1, 31))
    main = DailySizeRotatingFile(tmp_path, "hapa_", 0, 3, clock=clock, retention_days=14)
    err = DailySizeRotatingFile(tmp_path, "error_", 0, 3, clock=clock, retention_days=14)
    main.write(b"a\n")
    err.write(b"e\n")
    left = _names(tmp_path)
    assert not any(n.startswith(("hapa_20250101", "error_20250101", "hapa_20250117"))
                   for n in left)
    assert {"hapa_20250118.log", "hapa_20250118.log.1", "hapa_20250131.log",
            "error_20250131.log", *UNRELATED} <= left
    assert main.pruned == 5 and err.pruned == 2


def test_pruning_happens_again_at_midnight_rollover(tmp_path: Path) -> None:
    """A long-running process prunes when the day changes, once per day, not per write."""
    clock = Clock(_utc(2025, 3, 1, 23))
    f = DailySizeRotatingFile(tmp_path, "hapa_", 0, 3, clock=clock, retention_days=2)
    f.write(b"day1\n")
    (tmp_path / "hapa_20250228.log").write_text("y\n")
    f.write(b"same day\n")  # no rollover: nothing pruned yet
    assert (tmp_path / "hapa_20250228.log").exists()
    clock.t = _utc(2025, 3, 2, 0)  # next day: keep 03-02 and 03-01
    f.write(b"day2\n")
    assert _names(tmp_path) >= {"hapa_20250301.log", "hapa_20250302.log"}
    assert not (tmp_path / "hapa_20250228.log").exists()
    clock.t = _utc(2025, 3, 3, 0)
    f.write(b"day3\n")
    assert not (tmp_path / "hapa_20250301.log").exists()
    assert (tmp_path / "hapa_20250302.log").exists()


def test_zero_keeps_everything(tmp_path: Path) -> None:
    """LOG_RETENTION_DAYS=0 deletes nothing, however old."""
    _seed(tmp_path)
    f = DailySizeRotatingFile(tmp_path, "hapa_", 0, 3, clock=Clock(_utc(2026, 1, 1)),
                              retention_days=0)
    f.write(b"a\n")
    assert _names(tmp_path) >= set(OLD_FILES)


def test_local_time_days(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With utc=False the day boundaries are local ones, as the file names are."""
    monkeypatch.setenv("TZ", "Asia/Seoul")
    import time

    time.tzset()
    try:
        (tmp_path / "hapa_20250101.log").write_text("x\n")
        # 2025-01-01 20:00 UTC is 2025-01-02 05:00 in Seoul: with 1 day kept, 01-01 goes.
        f = DailySizeRotatingFile(tmp_path, "hapa_", 0, 3, utc=False,
                                  clock=Clock(_utc(2025, 1, 1, 20)), retention_days=1)
        f.write(b"a\n")
        assert _names(tmp_path) == {"hapa_20250102.log", ".hapa_lock"}
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


def test_a_file_already_deleted_by_another_process_is_no_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Between listing and unlinking another process deleted the file: the write goes on."""
    import os

    _seed(tmp_path)
    real_unlink = os.unlink

    def racing_unlink(path: str) -> None:
        real_unlink(path)
        real_unlink(path)  # the second call is "the other process was first"

    monkeypatch.setattr("hapa_telemetry.logs.files.os.unlink", racing_unlink)
    f = DailySizeRotatingFile(tmp_path, "hapa_", 0, 3, clock=Clock(_utc(2025, 1, 31)),
                              retention_days=14)
    f.write(b"still written\n")
    monkeypatch.undo()
    assert (tmp_path / "hapa_20250131.log").read_bytes() == b"still written\n"
    assert not (tmp_path / "hapa_20250101.log").exists()


def _writer(directory: str, start: multiprocessing.synchronize.Event, k: int) -> None:
    f = DailySizeRotatingFile(directory, "hapa_", 0, 3, clock=lambda: _utc(2025, 1, 31),
                              retention_days=14)
    start.wait(10)
    for i in range(20):
        f.write(f"w{k} {i}\n".encode())


def test_several_processes_prune_the_same_directory(tmp_path: Path) -> None:
    """Four processes rolling over at once: old files gone, no process fails, no line lost."""
    _seed(tmp_path)
    ctx = multiprocessing.get_context("fork")
    start = ctx.Event()
    procs = [ctx.Process(target=_writer, args=(str(tmp_path), start, k)) for k in range(4)]
    for p in procs:
        p.start()
    start.set()
    for p in procs:
        p.join(30)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    assert not (tmp_path / "hapa_20250101.log.1").exists()
    lines = (tmp_path / "hapa_20250131.log").read_text().splitlines()
    assert len(lines) == 80


def test_settings_read_log_retention_days() -> None:
    """LOG_RETENTION_DAYS: default 14, 0 allowed, negative or non-numeric rejected."""
    assert Settings.load({}).log_retention_days == 14
    assert Settings.load({"LOG_RETENTION_DAYS": "0"}).log_retention_days == 0
    assert Settings.load({}, log_retention_days=3).log_retention_days == 3
    with pytest.raises(SettingsError, match="LOG_RETENTION_DAYS"):
        Settings.load({"LOG_RETENTION_DAYS": "-1"})
    with pytest.raises(SettingsError, match="LOG_RETENTION_DAYS"):
        Settings.load({"LOG_RETENTION_DAYS": "two weeks"})


def test_configured_pipeline_applies_retention(tmp_path: Path) -> None:
    """configure() passes the setting to both daily files (hapa_ and error_)."""
    from hapa_telemetry.logs.pipeline import LogPipeline

    settings = Settings.load({}, log_directory=str(tmp_path), log_retention_days=7,
                             log_to_stdout=False)
    pipeline = LogPipeline(settings)
    try:
        sinks = [s for s, _ in pipeline.writer.sinks if isinstance(s, DailySizeRotatingFile)]
        assert sorted((s.prefix, s.retention_days) for s in sinks) == [("error_", 7),
                                                                      ("hapa_", 7)]
    finally:
        pipeline.shutdown(2)
