"""The rollout buffer: a bounded Redis stream between rollout actors and the learner.

Actors ``put`` encoded records; the learner ``take``s them through the consumer group
"learner" and ``ack``s them once trained on. A record stays in the stream until acked,
so delivery is at-least-once: entries a consumer took and never acked (it died) are
reclaimed by the next ``take`` of any consumer once idle for ``reclaim_idle_ms`` (a
live consumer too must ack within that time, or its records are delivered again).
Undecodable entries go to a dead-letter stream and records more than ``max_staleness``
weight versions old are dropped; neither ever reaches or crashes the learner.

Every change to the stream updates the counters hash in the same Lua script, so that
any snapshot satisfies ``produced == acked + dead_lettered + dropped_stale + depth``.
One instance per process: build it with :meth:`RolloutBuffer.from_url` in each actor.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import redis

from redux.buffer.codec import RecordDecodeError, RolloutRecord, decode_record, encode_record
from redux.buffer.connection import connect, require_binary_client
from redux.config import BufferConfig

GROUP = "learner"
# How often a producer blocked on a full buffer looks for room again; short next to a
# learner step, long enough that blocked producers do not keep Redis busy.
_FULL_POLL_S = 0.05

_log = logging.getLogger(__name__)

# A stream entry as redis-py returns it: id and fields (None if deleted meanwhile).
_Entry = tuple[bytes, dict[bytes, bytes] | None]

# The settling scripts below XACK + XDEL each entry and count only the entries that
# call deleted: an entry can be settled twice (a slow consumer acks after its entry was
# reclaimed and settled by another), and counting it twice would break the invariant.

# KEYS: rollout stream, counters. ARGV: capacity, payloads...
# Appends as many payloads as fit, atomically with the check: concurrent producers
# can never overfill the stream.
_PUT_LUA = """
local room = tonumber(ARGV[1]) - redis.call('XLEN', KEYS[1])
local ids = {}
for i = 2, math.min(#ARGV, room + 1) do
  ids[#ids + 1] = redis.call('XADD', KEYS[1], '*', 'r', ARGV[i])
end
if #ids > 0 then redis.call('HINCRBY', KEYS[2], 'produced', #ids) end
return ids
"""

# KEYS: rollout stream, counters. ARGV: group, ids...
_ACK_LUA = """
local n = 0
for i = 2, #ARGV do
  redis.call('XACK', KEYS[1], ARGV[1], ARGV[i])
  n = n + redis.call('XDEL', KEYS[1], ARGV[i])
end
if n > 0 then redis.call('HINCRBY', KEYS[2], 'acked', n) end
return n
"""

# KEYS: rollout stream, counters. ARGV: group, then (id, staleness) pairs.
_DROP_STALE_LUA = """
local n, staleness = 0, 0
for i = 2, #ARGV, 2 do
  redis.call('XACK', KEYS[1], ARGV[1], ARGV[i])
  if redis.call('XDEL', KEYS[1], ARGV[i]) == 1 then
    n = n + 1
    staleness = staleness + tonumber(ARGV[i + 1])
  end
end
if n > 0 then
  redis.call('HINCRBY', KEYS[2], 'dropped_stale', n)
  redis.call('HINCRBY', KEYS[2], 'dropped_staleness', staleness)
end
return n
"""

# KEYS: rollout stream, counters, dead-letter stream. ARGV: group, then (id, payload, error) triples.
_DEAD_LETTER_LUA = """
local n = 0
for i = 2, #ARGV, 3 do
  redis.call('XACK', KEYS[1], ARGV[1], ARGV[i])
  if redis.call('XDEL', KEYS[1], ARGV[i]) == 1 then
    redis.call('XADD', KEYS[3], '*', 'r', ARGV[i + 1], 'error', ARGV[i + 2], 'source_id', ARGV[i])
    n = n + 1
  end
end
if n > 0 then redis.call('HINCRBY', KEYS[2], 'dead_lettered', n) end
return n
"""


class BufferFullTimeout(TimeoutError):
    """The buffer stayed full for ``put_timeout_s``: the learner is not consuming."""


@dataclass(frozen=True)
class Taken:
    """A record handed to a consumer; ack ``id`` once trained on."""

    id: str
    record: RolloutRecord


@dataclass(frozen=True)
class BufferStats:
    """Counters since the namespace was created; produced == acked + dead_lettered + dropped_stale + depth."""

    depth: int  # entries in the stream: not yet acked, pending or not
    pending: int  # delivered to a consumer, not yet acked
    produced: int
    consumed: int  # records returned by take; a reclaimed record counts each time
    acked: int
    dead_lettered: int
    dropped_stale: int
    dropped_staleness: int  # sum over dropped records of (learner version - record version)
    reclaimed: int


_COUNTERS = ("produced", "consumed", "acked", "dead_lettered", "dropped_stale", "dropped_staleness", "reclaimed")


def is_stale(record_version: int, current_version: int, max_staleness: int) -> bool:
    """Whether a record acted with ``record_version`` is too old to train ``current_version``."""
    return current_version - record_version > max_staleness


class RolloutBuffer:
    """A bounded, at-least-once queue of rollout records in the Redis streams of ``namespace``."""

    def __init__(self, client: redis.Redis, namespace: str, cfg: BufferConfig, consumer: str = "learner-0") -> None:
        require_binary_client(client)
        self.namespace = namespace
        self.cfg = cfg
        self.consumer = consumer
        self.stream = f"{namespace}:rollouts"
        self.dead_letter_stream = f"{namespace}:dead-letter"
        self.counters_key = f"{namespace}:counters"
        self._client = client
        self._put_script = client.register_script(_PUT_LUA)
        self._ack_script = client.register_script(_ACK_LUA)
        self._drop_stale_script = client.register_script(_DROP_STALE_LUA)
        self._dead_letter_script = client.register_script(_DEAD_LETTER_LUA)
        self._create_group()

    @classmethod
    def from_url(cls, url: str, namespace: str, cfg: BufferConfig, consumer: str = "learner-0") -> RolloutBuffer:
        return cls(connect(url, cfg.connect_timeout_s), namespace, cfg, consumer)

    def put(self, records: list[RolloutRecord]) -> list[str]:
        """Append records in order; blocks while the buffer is full, see :meth:`put_raw`."""
        return self._append([encode_record(record) for record in records])

    def put_raw(self, data: bytes) -> str:
        """Append already-encoded bytes (valid or not) under the same capacity rule.

        Raises BufferFullTimeout if the buffer stays full for ``cfg.put_timeout_s``.
        """
        return self._append([data])[0]

    def take(
        self, n: int, current_version: int, max_staleness: int | None = None, block_ms: int | None = None
    ) -> list[Taken]:
        """Up to ``n`` fresh records: first reclaimed ones, then new ones.

        Waits up to ``block_ms`` (default ``cfg.take_block_ms``; 0: not at all) for new
        records when there is nothing to reclaim. May return fewer than ``n``, or none,
        since bad and stale entries are settled here instead of returned.
        """
        if n < 1:
            raise ValueError(f"take needs n >= 1, got {n}")
        max_staleness = self.cfg.max_staleness if max_staleness is None else max_staleness
        block_ms = self.cfg.take_block_ms if block_ms is None else block_ms
        entries = self._reclaim(n)
        reclaimed = len(entries)
        if reclaimed < n:
            # Reclaimed records are ready now; wait for new ones only when there are none.
            entries += self._read_new(n - reclaimed, block_ms=0 if reclaimed else block_ms)
        return self._settle(entries, reclaimed, current_version, max_staleness)

    def ack(self, ids: list[str]) -> int:
        """Remove trained-on records for good; returns how many were still there."""
        if not ids:
            return 0
        return self._ack_script(keys=[self.stream, self.counters_key], args=[GROUP, *ids])

    def stats(self) -> BufferStats:
        # One MULTI: every script updates stream and counters together, so the
        # snapshot satisfies produced == acked + dead_lettered + dropped_stale + depth.
        pipe = self._client.pipeline(transaction=True)
        pipe.xlen(self.stream)
        pipe.xpending(self.stream, GROUP)
        pipe.hgetall(self.counters_key)
        depth, pending, counters = pipe.execute()
        values = {name.decode(): int(value) for name, value in counters.items()}
        return BufferStats(depth=depth, pending=pending["pending"], **{name: values.get(name, 0) for name in _COUNTERS})

    def _create_group(self) -> None:
        try:
            # From id 0: records put before the group existed are delivered too.
            self._client.xgroup_create(self.stream, GROUP, id="0", mkstream=True)
        except redis.ResponseError as err:
            if "BUSYGROUP" not in str(err):
                raise

    def _append(self, payloads: list[bytes]) -> list[str]:
        deadline = time.monotonic() + self.cfg.put_timeout_s
        ids: list[str] = []
        room = len(payloads)  # optimistic: the buffer is rarely full, so one round trip
        while len(ids) < len(payloads):
            batch = payloads[len(ids) : len(ids) + room]
            written = self._put_script(keys=[self.stream, self.counters_key], args=[self.cfg.capacity, *batch])
            ids += [entry_id.decode() for entry_id in written]
            if len(ids) < len(payloads):
                room = self._wait_for_room(deadline, unwritten=len(payloads) - len(ids))
        return ids

    def _wait_for_room(self, deadline: float, unwritten: int) -> int:
        # Polls XLEN rather than resending payloads: those can be large.
        while (room := self.cfg.capacity - self._client.xlen(self.stream)) <= 0:
            if time.monotonic() >= deadline:
                raise BufferFullTimeout(
                    f"{self.stream} stayed full ({self.cfg.capacity} records) for {self.cfg.put_timeout_s:g} s; "
                    f"{unwritten} records were not written"
                )
            time.sleep(_FULL_POLL_S)
        return room

    def _reclaim(self, n: int) -> list[_Entry]:
        _, claimed, _ = self._client.xautoclaim(
            self.stream, GROUP, self.consumer, min_idle_time=self.cfg.reclaim_idle_ms, start_id="0-0", count=n
        )
        return claimed

    def _read_new(self, n: int, block_ms: int) -> list[_Entry]:
        # redis-py omits BLOCK for None; BLOCK 0 would mean "forever".
        reply = self._client.xreadgroup(GROUP, self.consumer, {self.stream: ">"}, count=n, block=block_ms or None)
        return reply[0][1] if reply else []

    def _settle(self, entries: list[_Entry], reclaimed: int, current_version: int, max_staleness: int) -> list[Taken]:
        """Decode entries; dead-letter the undecodable, drop the stale, return the rest."""
        taken: list[Taken] = []
        stale_args: list[str | int] = []  # flat (id, staleness) pairs for the script
        dead_args: list[str | bytes] = []  # flat (id, payload, error) triples for the script
        for raw_id, fields in entries:
            entry_id = raw_id.decode()
            payload = (fields or {}).get(b"r", b"")
            try:
                record = decode_record(payload)
            except RecordDecodeError as err:
                _log.warning("dead-lettering %s entry %s: %s", self.stream, entry_id, err)
                dead_args += [entry_id, payload, str(err)]
                continue
            if is_stale(record.weight_version, current_version, max_staleness):
                stale_args += [entry_id, current_version - record.weight_version]
            else:
                taken.append(Taken(entry_id, record))
        # One round trip for all bookkeeping; each script is atomic on its own.
        pipe = self._client.pipeline(transaction=False)
        if dead_args:
            keys = [self.stream, self.counters_key, self.dead_letter_stream]
            self._dead_letter_script(keys=keys, args=[GROUP, *dead_args], client=pipe)
        if stale_args:
            self._drop_stale_script(keys=[self.stream, self.counters_key], args=[GROUP, *stale_args], client=pipe)
        if taken:
            pipe.hincrby(self.counters_key, "consumed", len(taken))
        if reclaimed:
            pipe.hincrby(self.counters_key, "reclaimed", reclaimed)
        if len(pipe):
            pipe.execute()
        return taken
