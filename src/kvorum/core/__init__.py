"""Pure protocol cores.

Theory of operation: every protocol in kvorum is a synchronous state machine with one shape.
Inputs are messages (``step``), the passage of time (``tick``, a counter — never a clock read)
and local requests (propose, read, ...). Outputs are *collected*, never performed: the driver
asks ``ready()`` for a bundle that says what to persist, what to send once that is durable, and
what to hand to the application, does all of it, then calls ``advance(ready)``. Randomness
arrives as a seeded :class:`random.Random`. Nothing in this package imports asyncio, socket,
time, random (other than for the ``Random`` type), threading or os, so the deterministic
simulator (:mod:`kvorum.sim`) and the asyncio runtime drive exactly the same code.
"""

from kvorum.core.shape import Core, NodeId, Ready

__all__ = ["Core", "NodeId", "Ready"]
