"""`serve` checks its port the way uvicorn binds it: a restart right after a stop is not refused."""

from __future__ import annotations

import socket

import pytest

from imagemachines.errors import UserError
from imagemachines.serve.cli import check_port_free


def _leave_time_wait() -> int:
    """A port on which a server just closed a connection first (TIME_WAIT), with nothing listening any more."""
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    conn, _ = server.accept()
    conn.close()  # the server side closes first, as a stopping server does: its end waits in TIME_WAIT
    client.recv(1)
    client.close()
    server.close()
    return port


def test_a_port_in_time_wait_after_a_stop_is_free():
    port = _leave_time_wait()
    with socket.socket() as plain, pytest.raises(OSError):  # real: a bind without SO_REUSEADDR is refused
        plain.bind(("127.0.0.1", port))
    check_port_free("127.0.0.1", port)


def test_a_listening_server_is_still_refused():
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        with pytest.raises(UserError, match="Is another server running there"):
            check_port_free("127.0.0.1", port)
