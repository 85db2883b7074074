"""Backends and the errors every balancer raises.

Theory of operation: a :class:`Backend` is an immutable name plus a positive integer weight
(its share of traffic relative to the others, e.g. its core count). Balancers identify
backends by name, so two backends with the same name are the same backend. Everything a
balancer learns about a backend at run time (requests in flight, latency estimates, health)
lives inside the balancer, never on the backend value, so a ``Backend`` can be shared,
hashed and compared freely.
"""

from __future__ import annotations

from dataclasses import dataclass


class BalancerError(ValueError):
    """A balancer was built or driven with arguments that make no sense."""


class ClockWentBackwardsError(BalancerError):
    """A ``now_ms`` argument was earlier than one the balancer had already seen."""


@dataclass(frozen=True, slots=True)
class Backend:
    """One server a client can send requests to.

    ``weight`` is a positive integer: a backend of weight 2 should get twice the traffic of
    one of weight 1 under the weighted strategies (the unweighted ones ignore it).
    """

    name: str
    weight: int = 1

    def __post_init__(self) -> None:
        if not self.name:
            raise BalancerError("a backend needs a non-empty name")
        # bool is an int subclass; weight=True is almost certainly a bug at the call site.
        if isinstance(self.weight, bool) or not isinstance(self.weight, int):
            raise BalancerError(
                f"backend {self.name!r}: weight must be an int, got {self.weight!r}"
            )
        if self.weight <= 0:
            raise BalancerError(
                f"backend {self.name!r}: weight must be positive, got {self.weight}"
            )
