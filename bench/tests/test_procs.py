"""`bench.procs.connections_held` counts the established connections a process holds on a port."""

from __future__ import annotations

import os
import socket

from bench.procs import connections_held


def test_held_counts_accepted_connections_on_the_port_only() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener, \
            socket.create_server(("127.0.0.1", 0)) as elsewhere:
        port = listener.getsockname()[1]
        clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(3)]
        accepted = [listener.accept()[0] for _ in range(3)]
        other = socket.create_connection(elsewhere.getsockname())
        other_side = elsewhere.accept()[0]
        try:
            # The clients' ends have the port as their remote one: not counted.
            assert connections_held([os.getpid()], port) == {os.getpid(): 3}
            accepted.pop().close()
            assert connections_held([os.getpid()], port) == {os.getpid(): 2}
            assert connections_held([os.getpid()], elsewhere.getsockname()[1]) == {os.getpid(): 1}
        finally:
            for sock in (*clients, *accepted, other, other_side):
                sock.close()


def test_a_process_that_is_gone_holds_none() -> None:
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    assert connections_held([pid], 1) == {pid: 0}
