"""A TCP relay between a driver and a real server, to cut the line or make the server go away.

The store's endpoint points at the relay (``relay.url`` / ``relay.port``); the
relay forwards every connection to the real server. A test then:

- cuts connection n after ``cuts[n]`` bytes of the server's answers (or of the
  client's requests, ``direction="up"``); ``cut_count`` counts such cuts;
- watches the bytes sent to the server (``forwarded``, ``on_forward``);
- cuts every open connection at once (:meth:`cut`): the server is still there;
- stops listening (:meth:`stop`): to the client, the server went away;
- delays every piece it forwards by ``delay`` seconds: a slow line;
- answers connection n itself with ``answers[n]`` (raw HTTP, a 503 say) once it has
  read the request's head, without reaching the server: a busy server.

Stopping the shared test server itself would disturb every other user of it.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable
from typing import Literal

_LINGER_0 = b"\x01\x00\x00\x00\x00\x00\x00\x00"  # struct linger {on, 0 s}: close() resets


class Relay:
    """Forwards 127.0.0.1:<port> to ``target`` (an ``http://host:port`` URL or a (host, port)).

    ``graceful``: close connections with a FIN (shutdown, then close) rather than a reset.
    """

    def __init__(
        self,
        target: str | tuple[str, int],
        cuts: Iterable[int] = (),
        direction: Literal["down", "up"] = "down",
        graceful: bool = False,
        delay: float = 0.0,
        answers: Iterable[bytes | None] = (),
    ) -> None:
        if isinstance(target, str):
            parts = urllib.parse.urlsplit(target)
            target = (parts.hostname, parts.port or 80)
        self.target = target
        self.cuts = list(cuts)
        self.direction = direction
        self.graceful = graceful
        self.delay = delay
        self.answers = list(answers)
        self.cut_count = 0  # connections cut by ``cuts``
        self.forwarded = 0  # bytes sent to the server
        self.on_forward: Callable[[Relay], None] | None = None
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stopped:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            with self._lock:
                answer = self.answers.pop(0) if self.answers else None
                limit = None if answer else self.cuts.pop(0) if self.cuts else None
            if answer:
                threading.Thread(target=self._answer, args=(client, answer), daemon=True).start()
                continue
            try:
                server = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets.update((client, server))
            up, down = (limit, None) if self.direction == "up" else (None, limit)
            threading.Thread(
                target=self._pump, args=(client, server, True, up), daemon=True
            ).start()
            threading.Thread(
                target=self._pump, args=(server, client, False, down), daemon=True
            ).start()

    def _pump(
        self, source: socket.socket, sink: socket.socket, upstream: bool, limit: int | None
    ) -> None:
        sent = 0
        try:
            while data := source.recv(1 << 16):
                cutting = limit is not None and sent + len(data) >= limit
                if cutting:
                    data = data[: limit - sent]
                if self.delay:
                    time.sleep(self.delay)
                sink.sendall(data)
                sent += len(data)
                if upstream:
                    self.forwarded += len(data)
                    if self.on_forward is not None:
                        self.on_forward(self)
                if cutting:
                    with self._lock:
                        self.cut_count += 1
                    break
        except OSError:
            pass
        finally:
            self._close(source)
            self._close(sink)

    def _answer(self, client: socket.socket, answer: bytes) -> None:
        """Read the request's head, answer ``answer`` and close (the body is not read)."""
        with self._lock:
            self._sockets.add(client)
        head = b""
        try:
            while b"\r\n\r\n" not in head and len(head) < 1 << 16:
                data = client.recv(1 << 16)
                if not data:
                    break
                head += data
            client.sendall(answer)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                client.shutdown(socket.SHUT_RDWR)
            self._close(client)

    def _close(self, sock: socket.socket) -> None:
        if self.graceful:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        else:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_0)
        with contextlib.suppress(OSError):
            sock.close()
        with self._lock:
            self._sockets.discard(sock)

    def cut(self) -> None:
        """Cut every open connection; new ones are still accepted."""
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            self._close(sock)

    def stop(self) -> None:
        """Stop listening and cut every connection: connections are now refused."""
        self._stopped = True
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() (close alone does not)
        with contextlib.suppress(OSError):
            self.listener.close()
        self.cut()


def busy_answer(code: str = "SlowDown") -> bytes:
    """A 503 as S3 (``SlowDown``) and Swift send it when they are overloaded."""
    body = (
        f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
        "<Message>Please reduce your request rate.</Message></Error>"
    ).encode()
    head = (
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/xml\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    return head + body
