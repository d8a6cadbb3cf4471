"""A port that accepts TCP connections and never answers (a hung collector).

Run: python blackhole.py PORT — keeps up to 10,000 accepted sockets open without reading
or writing; exits on SIGTERM.
"""

from __future__ import annotations

import signal
import socket
import sys
from typing import Any

MAX_HELD = 10_000


def main() -> None:
    port = int(sys.argv[1])
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", port))
    srv.listen(1024)
    srv.settimeout(0.5)
    held: list[socket.socket] = []
    running = True

    def stop(*_: Any) -> None:
        nonlocal running
        running = False

    signal.signal(signal.SIGTERM, stop)
    while running:
        try:
            conn, _ = srv.accept()
        except TimeoutError:
            continue
        except OSError:
            break
        held.append(conn)
        if len(held) > MAX_HELD:
            held.pop(0).close()
    for c in held:
        c.close()
    srv.close()


if __name__ == "__main__":
    main()
