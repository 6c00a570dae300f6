"""Connecting to Redis, and keeping its password out of messages and logs."""

from __future__ import annotations

import re
import time
from urllib.parse import urlsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

_SCHEMES = ("redis", "rediss", "unix")
# One PING attempt may take this long; short, so that a server that comes up late is
# found soon after, and an unroutable host costs at most this much of the deadline.
_ATTEMPT_TIMEOUT_S = 1.5
_ATTEMPT_PAUSE_S = 0.2


class RedisUnreachable(ConnectionError):
    """No Redis answered at a URL within the timeout (an infrastructure failure: retry elsewhere)."""


def redact(url: str) -> str:
    """The URL with its password (in the user info or a ``password=`` query) replaced by ``***``."""
    url = re.sub(r"^([a-z0-9+.-]+://[^:@/]*:)[^@/]*@", r"\1***@", url, flags=re.IGNORECASE)
    return re.sub(r"([?&]password=)[^&#]*", r"\1***", url, flags=re.IGNORECASE)


def connect(url: str, timeout_s: float) -> redis.Redis:
    """A client for ``url`` whose server answered PING, trying for at most ``timeout_s``.

    The client returns raw bytes (records are binary) and gives up on a command that
    gets no answer for ``timeout_s``; blocking reads must therefore wait less than that.
    """
    scheme = urlsplit(url).scheme
    if scheme not in _SCHEMES:
        raise ValueError(f"{redact(url)} is not a Redis URL: the scheme must be one of {_SCHEMES}, not {scheme!r}")
    deadline = time.monotonic() + timeout_s
    last_error: Exception | None = None
    while (remaining := deadline - time.monotonic()) > 0:
        attempt_s = min(_ATTEMPT_TIMEOUT_S, remaining)
        probe = redis.Redis.from_url(
            url, socket_connect_timeout=attempt_s, socket_timeout=attempt_s, retry=Retry(NoBackoff(), 0)
        )
        try:
            probe.ping()
            return redis.Redis.from_url(url, socket_connect_timeout=_ATTEMPT_TIMEOUT_S, socket_timeout=timeout_s)
        except redis.AuthenticationError as err:
            # Wrong credentials do not fix themselves: fail now instead of at the deadline.
            raise RedisUnreachable(f"Redis at {redact(url)} rejected the credentials: {err}") from err
        except redis.RedisError as err:  # refused, timed out, loading, or not speaking Redis (yet)
            last_error = err
        finally:
            probe.close()
        time.sleep(min(_ATTEMPT_PAUSE_S, max(0.0, deadline - time.monotonic())))
    raise RedisUnreachable(
        f"no Redis answered at {redact(url)} within {timeout_s:g} s"
        f" (last error: {type(last_error).__name__} {last_error})"
    )


def require_binary_client(client: redis.Redis) -> None:
    """Buffer payloads are msgpack bytes: a client that decodes replies to str would corrupt them."""
    if client.connection_pool.connection_kwargs.get("decode_responses"):
        raise ValueError("the buffer needs a Redis client with decode_responses=False")
