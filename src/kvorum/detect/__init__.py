"""Failure detectors: heartbeats in, suspicion and verdicts out — pure, with time passed in.

Theory of operation: a node cannot see another node die; it can only notice silence. Every
detector here turns the arrival times of heartbeats into a suspicion level that grows while the
node is silent, and declares it unavailable once the suspicion reaches a threshold:

* :class:`FixedTimeoutDetector` — suspicion is the silence in ms; threshold is the timeout.
* :class:`PhiAccrualDetector` — φ under a normal model of the inter-arrival history (Akka).
* :class:`ExponentialAccrualDetector` — φ under an exponential model (Cassandra).
* :class:`RetryingDetector` — wraps any of them and declares failure only after a limited
  number of unanswered probes.
* :class:`QuorumAggregator` — many observers' subjective verdicts become an objective one only
  when a quorum agrees (Redis Sentinel's SDOWN → ODOWN), emitted as events.

Nothing here reads a clock or touches the network: every call takes ``now_ms``, and outputs
(probes to send, transitions) are returned for a driver to act on. Seed scenario: DETECT-1.
"""

from kvorum.detect._accrual import (
    LOG10_E,
    ExponentialAccrualDetector,
    IntervalWindow,
    PhiAccrualDetector,
    phi_normal,
)
from kvorum.detect._interface import ClockWentBackwards, DetectorError, FailureDetector
from kvorum.detect._quorum import (
    OdownCleared,
    OdownSet,
    QuorumAggregator,
    QuorumEvent,
    SdownCleared,
    SdownSet,
    UnknownObserver,
)
from kvorum.detect._retry import (
    DeclaredFailed,
    RetryAction,
    RetryingDetector,
    RetryState,
    SendProbe,
)
from kvorum.detect._timeout import FixedTimeoutDetector

__all__ = [
    "LOG10_E",
    "ClockWentBackwards",
    "DeclaredFailed",
    "DetectorError",
    "ExponentialAccrualDetector",
    "FailureDetector",
    "FixedTimeoutDetector",
    "IntervalWindow",
    "OdownCleared",
    "OdownSet",
    "PhiAccrualDetector",
    "QuorumAggregator",
    "QuorumEvent",
    "RetryAction",
    "RetryState",
    "RetryingDetector",
    "SdownCleared",
    "SdownSet",
    "SendProbe",
    "UnknownObserver",
    "phi_normal",
]
