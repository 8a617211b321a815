"""The README's first command, `make run`, as a new user types it in a terminal."""

from __future__ import annotations

import contextlib
import os
import pty
import select
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil  # type: ignore[import-untyped]
import pytest

from tests.conftest import ROOT, Oracle, answers, free_port, wait_until
from tests.factories import EXAMPLE_CUSTOMER


class Terminal:
    """A command on a pseudo-terminal, its output read as it comes (a full terminal
    buffer would stall the servers' logging)."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: becomes the command, with the pty as its terminal
            # As in a new user's terminal, Ctrl-C interrupts. A test run started as a
            # background job inherits SIGINT ignored, and a shell cannot trap a signal
            # it was started ignoring: make run's shell would never see the Ctrl-C.
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            signal.signal(signal.SIGQUIT, signal.SIG_DFL)
            os.chdir(ROOT)
            os.execvpe(argv[0], argv, env)
        self.output = b""
        self.status: int | None = None

    def read(self) -> None:
        try:
            while select.select([self.fd], [], [], 0)[0]:
                self.output += os.read(self.fd, 65536)
        except OSError:  # the command has ended and closed the terminal
            pass

    def exit_status(self) -> int | None:
        if self.status is None:
            done, status = os.waitpid(self.pid, os.WNOHANG)
            if done:
                self.status = os.waitstatus_to_exitcode(status)
        return self.status

    def close(self) -> None:
        if self.exit_status() is None:
            os.killpg(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        os.close(self.fd)


def pids_on(url: str) -> list[int]:
    """The processes started for this URL's port: bentoml's `--port N`, streamlit's
    `--server.port N` and the shell that started them."""
    port = url.rsplit(":", 1)[1]
    found = subprocess.run(["pgrep", "-f", f"port {port}"], capture_output=True, text=True)
    return [int(pid) for pid in found.stdout.split()]


def processes_of(*urls: str) -> str:
    """`ps` lines of the processes started for these URLs and of all their descendants."""
    lines = []
    for pid in {pid for url in urls for pid in pids_on(url)}:
        with contextlib.suppress(psutil.NoSuchProcess):
            root = psutil.Process(pid)
            for proc in [root, *root.children(recursive=True)]:
                with contextlib.suppress(psutil.NoSuchProcess):
                    lines.append(f"{proc.pid} {proc.status()} {' '.join(proc.cmdline())[:160]}")
    return "\n".join(sorted(set(lines))) or "(none still running)"


def listening_addresses(url: str) -> set[str]:
    port = int(url.rsplit(":", 1)[1])
    return {
        connection.laddr.ip
        for connection in psutil.net_connections(kind="inet")
        if connection.status == psutil.CONN_LISTEN and connection.laddr.port == port
    }


@pytest.fixture
def make_run(tmp_path: Path) -> Iterator[tuple[Terminal, str, str]]:
    make, uv = shutil.which("make"), shutil.which("uv")
    if make is None or uv is None:
        pytest.skip("`make run` needs make and uv (make setup installs with uv)")
    service_port, ui_port = free_port(), free_port()
    # A new user's defaults, and an empty model store: `make run` imports the bundled
    # model itself.
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"RUN_HOST", "MAKEFLAGS", "MAKELEVEL", "MFLAGS"}
    }
    env["BENTOML_HOME"] = str(tmp_path / "bentoml")
    terminal = Terminal([make, "run", f"SERVICE_PORT={service_port}", f"UI_PORT={ui_port}"], env)
    service, ui = f"http://127.0.0.1:{service_port}", f"http://127.0.0.1:{ui_port}"
    try:
        yield terminal, service, ui
    finally:
        terminal.close()
        # `make run` puts the service and the UI in process groups of their own: if it
        # failed to stop them, they are stopped here, by PID, not left behind.
        for pid in pids_on(service) + pids_on(ui):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@pytest.mark.slow
def test_make_run_serves_the_bundled_model_and_the_ui_and_ctrl_c_stops_both(
    make_run: tuple[Terminal, str, str], oracle: Oracle
) -> None:
    terminal, service, ui = make_run

    def both_ready() -> bool:
        terminal.read()
        assert terminal.exit_status() is None, terminal.output.decode(errors="replace")
        return answers(f"{service}/readyz") and answers(f"{ui}/_stcore/health")

    wait_until(both_ready, "the service and the UI answering", timeout=180)
    # An unauthenticated service is not offered to the network unless the user asks.
    assert listening_addresses(service) == {"127.0.0.1"}
    assert listening_addresses(ui) == {"127.0.0.1"}
    answer = httpx.post(f"{service}/v1/customer", json=EXAMPLE_CUSTOMER, timeout=10)
    assert answer.status_code == 200
    assert answer.json() == {"Prediction": oracle.label(oracle.probability(EXAMPLE_CUSTOMER))}

    os.write(terminal.fd, b"\x03")  # Ctrl-C

    def make_ended() -> bool:
        terminal.read()
        return terminal.exit_status() is not None

    try:
        wait_until(make_ended, "make run ending on Ctrl-C", timeout=60)
    except AssertionError as error:
        # What was still running, and what it last said: enough to tell which part hung.
        said = terminal.output[-4000:].decode(errors="replace")
        raise AssertionError(f"{error}\n{processes_of(service, ui)}\n{said}") from None
    wait_until(
        lambda: not pids_on(service) and not pids_on(ui),
        "the service, the UI and their workers all stopped",
        timeout=30,
    )
    assert not answers(f"{service}/livez")
    assert not answers(f"{ui}/_stcore/health")
