"""The embedded servers' helper: a second command beside `make run` must not stop its PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys

from config.embedded import _postgres_running


def test_a_data_directory_without_a_pid_file_has_no_server(tmp_path):
    assert not _postgres_running(tmp_path)


def test_a_live_postmaster_pid_counts_as_running(tmp_path):
    (tmp_path / "postmaster.pid").write_text(f"{os.getpid()}\n/some/pgdata\n")
    assert _postgres_running(tmp_path)


def test_a_stale_pid_file_left_by_a_killed_server_does_not(tmp_path):
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True)
    (tmp_path / "postmaster.pid").write_text(finished.stdout.decode())
    assert not _postgres_running(tmp_path)


def test_a_garbled_pid_file_does_not(tmp_path):
    (tmp_path / "postmaster.pid").write_text("not a pid")
    assert not _postgres_running(tmp_path)
