"""Fixtures for the UI tests: the page's environment, and a gate to stop the service.

The live service itself is the session's `live_service` (tests/conftest.py): the real
`bentoml serve` on the bundled model. A `Gate` sits between the page and that service so
that a test can make the service go away, or go silent, without stopping it for others.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator

import pytest
import streamlit as st

from tests.conftest import LiveService


class Gate:
    """A loopback TCP relay to the service that a test can close (down) or stall (slow)."""

    def __init__(self, target: tuple[str, int]) -> None:
        self._target = target
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._stalled = False
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        """The service is gone: new connections are refused, open ones are cut."""
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread
        self._listener.close()
        self._cut()

    def stall(self) -> None:
        """The service still accepts connections but never answers."""
        self._stalled = True
        self._cut()

    def _cut(self) -> None:
        with self._lock:
            for connection in self._open:
                connection.close()
            self._open.clear()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self._open.append(client)
            if self._stalled:
                continue
            upstream = socket.create_connection(self._target)
            with self._lock:
                self._open.append(upstream)
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pump, args=(source, sink), daemon=True).start()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(1 << 16):
            sink.sendall(data)
        sink.shutdown(socket.SHUT_WR)
    except OSError:
        pass


@pytest.fixture(autouse=True)
def _fresh_caches() -> Iterator[None]:
    """Each test starts with the page's caches empty, and leaves no client open."""
    yield
    st.cache_resource.clear()
    st.cache_data.clear()


@pytest.fixture
def page_env(live_service: LiveService, monkeypatch: pytest.MonkeyPatch) -> str:
    """The page talks to the live service."""
    monkeypatch.setenv("CHURN_API_URL", live_service.url)
    monkeypatch.delenv("CHURN_API_TIMEOUT", raising=False)
    return live_service.url


@pytest.fixture
def gate(live_service: LiveService, monkeypatch: pytest.MonkeyPatch) -> Iterator[Gate]:
    """The page talks to the live service through a gate (short time limit)."""
    host, port = live_service.url.removeprefix("http://").split(":")
    relay = Gate((host, int(port)))
    monkeypatch.setenv("CHURN_API_URL", relay.url)
    monkeypatch.setenv("CHURN_API_TIMEOUT", "3")
    yield relay
    relay.close()
