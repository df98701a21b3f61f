"""`make run`'s supervisor: a process that exits is restarted (with a backoff) while the others keep
running; SIGTERM or Ctrl-C stops them all; every line is prefixed with its process's name."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from config.supervisor import Supervisor, read_procfile
from conftest import wait_until


def test_a_procfile_is_read_in_order_skipping_comments(tmp_path):
    procfile = tmp_path / "Procfile"
    procfile.write_text("# the processes\nweb: uvicorn app --port ${PORT:-8000}\n\nworker: dramatiq a.b\n")
    assert read_procfile(procfile) == {"web": "uvicorn app --port ${PORT:-8000}", "worker": "dramatiq a.b"}


def test_a_procfile_line_without_a_command_is_refused_with_its_line_number(tmp_path):
    procfile = tmp_path / "Procfile"
    procfile.write_text("web: serve\nbroken\n")
    with pytest.raises(ValueError, match="Procfile:2"):
        read_procfile(procfile)


def test_the_backoff_doubles_up_to_the_cap_and_resets_after_a_stable_run():
    supervisor = Supervisor({"a": "true"}, out=io.StringIO(), stable_seconds=60, first_delay=1, max_delay=8)
    process = supervisor.processes[0]
    process.started_at = time.monotonic()
    assert [supervisor.delay_after_exit(process) for _ in range(5)] == [1, 2, 4, 8, 8]
    process.started_at = time.monotonic() - 61  # it stayed up a while before this exit
    assert supervisor.delay_after_exit(process) == 1


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_crashed_process_is_restarted_the_others_keep_running_and_sigterm_stops_all(tmp_path):
    starts = tmp_path / "starts"
    procfile = tmp_path / "Procfile"
    crasher = f"import os; open({str(starts)!r}, 'a').write('x'); print('crashing', flush=True); os._exit(3)"
    pid_file = tmp_path / "steady.pid"
    steady = f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(600)"
    procfile.write_text(f'crasher: {sys.executable} -c "{crasher}"\nsteady: {sys.executable} -c "{steady}"\n')
    runner = textwrap.dedent(
        f"""
        import sys
        from config import supervisor
        supervisor.FIRST_DELAY = 0.2
        sys.exit(supervisor.main(["-f", {str(procfile)!r}]))
        """
    )
    process = subprocess.Popen(
        [sys.executable, "-c", runner],
        cwd=os.getcwd(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_until(lambda: starts.exists() and len(starts.read_text()) >= 3, what="the crasher's restarts")
        steady_pid = int(
            wait_until(
                lambda: (tmp_path / "steady.pid").exists() and (tmp_path / "steady.pid").read_text(),
                what="the steady process",
            )
        )
        assert _alive(steady_pid)  # one process crashing did not take the other down
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0
    wait_until(lambda: not _alive(steady_pid), what="the steady process to be stopped")
    lines = output.splitlines()
    assert any(line.endswith("crasher | crashing") for line in lines), output
    assert any("crasher | exited with code 3; restarting in" in line for line in lines), output
    assert any("steady  | stopped" in line for line in lines), output
