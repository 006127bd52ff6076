"""Free loopback ports for local networks (devnets, tests)."""

from __future__ import annotations

import socket


def free_ports(count: int) -> list[int]:
    """`count` distinct free ports on 127.0.0.1. Every probe socket stays bound until all are
    chosen: probing one at a time can hand out the same port twice, and two servers given one
    port would not both fail (a DO could reach the wrong one)."""
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            socks.append(s)
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()
