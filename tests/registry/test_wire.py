"""Answers framed the ways HTTP/1.1 allows, from a server that sends exactly the bytes a
test gives: the body comes whole, a connection is reused only when it can be, and a body
cut short is an error, not a short blob."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from ocibuild.registry.http import BrokenConnection, Pool


class ScriptedServer:
    """Answers the n-th request on 127.0.0.1 with `answers[n]` (raw bytes); an answer
    ending in b"<close>" is sent without it and the connection closed."""

    def __init__(self, answers: list[bytes]) -> None:
        self.answers = list(answers)
        self.connections = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while self.answers:
            conn, _ = self._listener.accept()
            self.connections += 1
            with conn, conn.makefile("rb") as reader:
                while self.answers:
                    while (line := reader.readline()) not in (b"\r\n", b""):
                        pass
                    if not line:
                        break
                    answer = self.answers.pop(0)
                    conn.sendall(answer.removesuffix(b"<close>"))
                    if answer.endswith(b"<close>"):
                        break

    def close(self) -> None:
        self._listener.close()


@pytest.fixture
def pool() -> Iterator[Pool]:
    p = Pool(lambda _every_system_ca: pytest.fail("no TLS here"), per_origin=2, headers={})
    yield p
    p.close()


def _get(pool: Pool, url: str) -> bytes:
    resp = pool.request("GET", url + "/v2/", headers={}, body=None, connect_timeout=5,
                        read_timeout=5)
    try:
        return b"".join(resp.stream(7))
    finally:
        resp.release()


def test_chunked_bodies_with_extensions_and_trailers_and_interim_answers(pool: Pool) -> None:
    chunked = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n")
    interim = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    server = ScriptedServer([chunked, interim, chunked])
    try:
        assert [_get(pool, server.url) for _ in range(3)] == [b"hello world", b"ok",
                                                              b"hello world"]
    finally:
        server.close()
    assert server.connections == 1  # each answer read to its end: one connection for all


def test_a_body_ending_with_the_connection_is_whole_and_the_connection_not_reused(
        pool: Pool) -> None:
    server = ScriptedServer([b"HTTP/1.0 200 OK\r\n\r\nuntil the end<close>",
                             b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 3\r\n"
                             b"\r\nabc", b"HTTP/1.1 204 No Content\r\n\r\n"])
    try:
        assert [_get(pool, server.url) for _ in range(3)] == [b"until the end", b"abc", b""]
    finally:
        server.close()
    assert server.connections == 3


@pytest.mark.parametrize("answer", [
    b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this<close>",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nonly this<close>",
], ids=["length", "chunked"])
def test_a_body_cut_short_is_an_error_after_what_came(pool: Pool, answer: bytes) -> None:
    server = ScriptedServer([answer])
    got = b""
    try:
        resp = pool.request("GET", server.url + "/v2/", headers={}, body=None,
                            connect_timeout=5, read_timeout=5)
        with pytest.raises(BrokenConnection) as caught:
            for piece in resp.stream(1 << 20):
                got += piece
        resp.release()
    finally:
        server.close()
    assert got == b"only this"
    assert "ended" in caught.value.reason, caught.value.reason


@pytest.mark.parametrize("size", [b"-1", b"+5", b"0x5", b"", b"z"])
def test_a_chunk_size_that_is_not_hex_digits_is_refused(pool: Pool, size: bytes) -> None:
    """A negative size would otherwise read the rest of the connection into memory."""
    server = ScriptedServer([b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                             + size + b"\r\nhello\r\n0\r\n\r\n" + b"x" * 4096 + b"<close>"])
    try:
        resp = pool.request("GET", server.url + "/v2/", headers={}, body=None,
                            connect_timeout=5, read_timeout=5)
        with pytest.raises(BrokenConnection) as caught:
            b"".join(resp.stream(1 << 20))
        resp.release()
    finally:
        server.close()
    assert "chunk size" in caught.value.reason, caught.value.reason


def test_a_content_length_that_is_not_ascii_digits_is_refused(pool: Pool) -> None:
    """"\xb2" (latin-1 for a superscript two) passes str.isdigit but not int()."""
    server = ScriptedServer([b"HTTP/1.1 200 OK\r\nContent-Length: \xb2\r\n\r\nab<close>"])
    try:
        with pytest.raises(BrokenConnection) as caught:
            pool.request("GET", server.url + "/v2/", headers={}, body=None,
                         connect_timeout=5, read_timeout=5)
    finally:
        server.close()
    # a bad answer, not (as int() made it) an error in sending the request
    assert caught.value.reason == "Connection aborted.", caught.value.reason
