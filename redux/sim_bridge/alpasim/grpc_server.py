"""The gRPC server both of our Alpasim services run in: large messages, a bound address.

Alpasim's frames exceed gRPC's default 4 MiB receive limit, so the limit is raised both
ways; the port may be 0 (any free one), and the bound port and address are returned.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import grpc


def make_server(workers: int, max_message_mb: int, thread_name: str) -> grpc.Server:
    limit = max_message_mb * 1024 * 1024
    return grpc.server(
        ThreadPoolExecutor(max_workers=workers, thread_name_prefix=thread_name),
        options=[("grpc.max_receive_message_length", limit), ("grpc.max_send_message_length", limit)],
    )


def bind(server: grpc.Server, host: str, port: int) -> tuple[int, str]:
    """(bound port, "host:port"); OSError if the address cannot be bound."""
    literal = f"[{host}]" if ":" in host else host  # an IPv6 literal
    bound = server.add_insecure_port(f"{literal}:{port}")
    if bound == 0:
        raise OSError(f"cannot bind {host}:{port}")
    return bound, f"{literal}:{bound}"
