"""`propylon logs`: the end of log files, and following them."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path


def _logs(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "propylon", "logs", *args],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=cwd,
    )


def test_last_lines_of_a_file(tmp_path: Path) -> None:
    log = tmp_path / "gw.log"
    log.write_text("".join(f"line {n}\n" for n in range(50)))
    result = _logs("--file", str(log), "-n", "3", cwd=tmp_path)
    assert result.returncode == 0
    assert result.stdout == "line 47\nline 48\nline 49\n"


def test_default_files_are_logs_star_log(tmp_path: Path) -> None:
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "a.log").write_text("from a\n")
    (tmp_path / "logs" / "b.log").write_text("from b\n")
    result = _logs(cwd=tmp_path)
    assert result.returncode == 0
    assert result.stdout == "==> logs/a.log <==\nfrom a\n==> logs/b.log <==\nfrom b\n"


def test_no_log_files_says_where_logs_go(tmp_path: Path) -> None:
    result = _logs(cwd=tmp_path)
    assert result.returncode == 1
    assert "no log files at ./logs/*.log; name one with --file" in result.stderr
    missing = _logs("--file", "nope.log", cwd=tmp_path)
    assert missing.returncode == 1
    assert "no such log file: nope.log" in missing.stderr


def test_follow_prints_new_lines_and_survives_truncation(tmp_path: Path) -> None:
    log = tmp_path / "gw.log"
    log.write_text("old\n")
    process = subprocess.Popen(
        [sys.executable, "-m", "propylon", "logs", "-f", "--file", str(log)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    seen: list[str] = []
    assert process.stdout is not None
    stdout = process.stdout
    reader = threading.Thread(target=lambda: seen.extend(stdout), daemon=True)
    reader.start()
    try:
        _wait(lambda: "old\n" in seen)
        with log.open("a") as handle:
            handle.write("new 1\n")
        _wait(lambda: "new 1\n" in seen)
        log.write_text("")  # logrotate's copytruncate
        time.sleep(0.5)
        with log.open("a") as handle:
            handle.write("after truncation\n")
        _wait(lambda: "after truncation\n" in seen)
    finally:
        process.terminate()
        process.wait(5)
        reader.join(5)
        process.stdout.close()
    assert seen[:3] == ["old\n", "new 1\n", "after truncation\n"]


def _wait(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("timed out")
