"""A checker that a group's counts and expiry index agree with its keys.

Theory of operation: an engine keeps three things beside the keys themselves, in the same
atomic write — the key count (DBSIZE), the count of keys with an expire time, and the expiry
index a sweep walks. If any of them drifts from the keys, DBSIZE lies, or a sweep misses keys
(they stay forever) or deletes the wrong ones on some replicas. :func:`audit_engine` recomputes
all three from a full scan, through the public :class:`~kvorum.kv.engine.Engine` interface
only, so it checks any implementation; tests run it after random workloads, and a simulator
can run it as an invariant.
"""

from __future__ import annotations

from kvorum.kv.engine import Engine
from kvorum.kv.values import expire_at_of

_LATEST_MS = (1 << 63) - 1


def audit_engine(engine: Engine) -> list[str]:
    """What is inconsistent in ``engine`` (an empty list when nothing is). Costs a full scan."""
    pairs = engine.scan(b"", None, engine.count() + 1_000_000)
    problems: list[str] = []
    if len(pairs) != engine.count():
        problems.append(f"count() says {engine.count()}, the scan finds {len(pairs)} keys")
    expiring = {key: expire_at_of(value) for key, value in pairs if expire_at_of(value)}
    if len(expiring) != engine.expiring_count():
        problems.append(
            f"expiring_count() says {engine.expiring_count()}, the scan finds {len(expiring)}"
        )
    indexed = engine.expired_keys(_LATEST_MS, len(pairs) + 1_000)
    if sorted(indexed) != sorted(expiring):
        missing = sorted(set(expiring) - set(indexed))[:5]
        stale = sorted(set(indexed) - set(expiring))[:5]
        problems.append(f"the expiry index misses {missing} and holds stale {stale}")
    floor = engine.next_expiry_ms()
    if expiring and (floor is None or floor > min(expiring.values())):
        problems.append(f"next_expiry_ms() is {floor}, after the earliest expire time")
    if not expiring and floor is not None:
        problems.append(f"next_expiry_ms() is {floor} with no key expiring")
    return problems
