"""The loopback server stays quiet when a client hangs up before its answer is written."""

from __future__ import annotations

import socket
import threading

import httpx

from kosmo_runtime import LoopbackServer


def test_a_client_that_hangs_up_mid_answer_prints_no_traceback(capfd):
    hung_up = threading.Event()
    answered = threading.Event()

    def simulator(request: httpx.Request) -> httpx.Response:
        hung_up.wait(5)
        answered.set()
        return httpx.Response(200, content=b"x" * (8 << 20))

    with LoopbackServer(simulator) as server:
        host, port = server.url.removeprefix("http://").split(":")
        client = socket.create_connection((host, int(port)))
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # close = reset
        client.sendall(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
        client.close()
        hung_up.set()
        assert answered.wait(5)
    # closing the server joined its request threads, so whatever they printed is out
    assert "Traceback" not in capfd.readouterr().err
