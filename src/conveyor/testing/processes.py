"""Commands run as a user runs them: started in a session of their own,
their output read as it comes, stopped with SIGINT to the group."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from typing import Any


class ProcessOutput:
    """The merged output of a child process (started with ``stdout=PIPE``,
    ``text=True``), read line by line on a thread as it comes, so a test
    can wait for a line while the process runs."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        if process.stdout is None:
            raise ValueError("start the process with stdout=subprocess.PIPE")
        self.lines: list[str] = []
        self._stream = process.stdout
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        for line in self._stream:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, text: str, within: float) -> str:
        """The first line containing ``text``; AssertionError with the whole
        output when none came within ``within`` seconds."""
        deadline = time.monotonic() + within
        while True:
            for line in self.lines:
                if text in line:
                    return line
            if time.monotonic() > deadline:
                raise AssertionError(f"no {text!r} within {within} s in:\n{self.text}")
            time.sleep(0.05)

    def close(self) -> None:
        """Waits for the reader (the process has exited) and closes the pipe."""
        self._thread.join(timeout=10)
        self._stream.close()

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


def start_command(
    command: list[str], *, cwd: str | os.PathLike[str], drop_env: tuple[str, ...] = (), **env: str
) -> tuple[subprocess.Popen[str], ProcessOutput]:
    """Starts ``command`` as a user would run it, with its output merged and
    read as it comes. The environment is this process's, less variables
    whose names start with one of ``drop_env``, plus ``env``; output is
    unbuffered and 200 columns wide (no wrapped lines to match)."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith(drop_env)}
    environ.update(PYTHONUNBUFFERED="1", COLUMNS="200", **env)
    process = subprocess.Popen(
        command,
        env=environ,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # a process group of its own, as a terminal's job
    )
    return process, ProcessOutput(process)


def stop_process(process: subprocess.Popen[Any], *, within: float = 30.0) -> int:
    """SIGINT to the process's whole group, as Ctrl-C in a terminal sends it
    (a process started by :func:`start_command` leads a group of its own),
    then SIGKILL if it is still running after ``within`` seconds; the exit
    code."""
    if process.poll() is None:
        try:
            group = os.getpgid(process.pid)
        except ProcessLookupError:
            group = None
        if group is not None and group == process.pid:
            os.killpg(group, signal.SIGINT)
        else:
            process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=within)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode
