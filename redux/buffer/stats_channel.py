"""Telemetry from actors and learner to the console: a capped Redis stream of small
msgpack dicts. Readers keep their own position, so any number of consoles can attach."""

from __future__ import annotations

import logging
from typing import Any

import redis

from redux.buffer.codec import RecordDecodeError, decode_message, encode_message
from redux.buffer.connection import connect, require_binary_client

# Approximate cap of the stream: far more history than a console shows, and bounded
# memory however long the run; approximate trimming keeps XADD O(1).
_STATS_MAX_LEN = 10_000

_log = logging.getLogger(__name__)


class StatsChannel:
    def __init__(self, client: redis.Redis, namespace: str) -> None:
        require_binary_client(client)
        self.stream = f"{namespace}:stats"
        self._client = client

    @classmethod
    def from_url(cls, url: str, namespace: str, connect_timeout_s: float) -> StatsChannel:
        return cls(connect(url, connect_timeout_s), namespace)

    def publish(self, message: dict[str, Any]) -> str:
        payload = encode_message(message)
        return self._client.xadd(self.stream, {"m": payload}, maxlen=_STATS_MAX_LEN, approximate=True).decode()

    def read(
        self, last_id: str = "0-0", count: int = 1000, block_ms: int | None = None
    ) -> tuple[str, list[dict[str, Any]]]:
        """Messages published after ``last_id`` and the id to read on from.

        Waits up to ``block_ms`` for a message when none is there (None or 0: not at
        all). Undecodable entries are logged and skipped.
        """
        # redis-py omits BLOCK for None; BLOCK 0 would mean "forever".
        reply = self._client.xread({self.stream: last_id}, count=count, block=block_ms or None)
        entries = reply[0][1] if reply else []
        messages = []
        for entry_id, fields in entries:
            try:
                messages.append(decode_message(fields.get(b"m")))
            except RecordDecodeError as err:
                _log.warning("skipping %s entry %s: %s", self.stream, entry_id, err)
        return (entries[-1][0].decode() if entries else last_id), messages
