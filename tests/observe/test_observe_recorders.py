"""The per-request recorders behind /metrics: buckets, batches, and bounded command names."""

from __future__ import annotations

from kvorum.observe.recorders import OTHER_COMMAND, LatencyHistogram, RequestCounts


def test_histogram_counts_a_batch_once_per_request_and_reads_cumulatively() -> None:
    h = LatencyHistogram((0.001, 0.01, 0.1))
    h.observe(0.0005)
    h.observe(0.005, times=3)  # a pipelined batch of three answered together
    h.observe(7.0)
    assert h.count == 5
    assert abs(h.sum_s - (0.0005 + 0.015 + 7.0)) < 1e-9
    assert h.cumulative() == [("0.001", 1), ("0.01", 4), ("0.1", 4), ("+Inf", 5)]


def test_a_bound_itself_falls_in_its_own_bucket() -> None:
    h = LatencyHistogram((0.001, 0.01))
    h.observe(0.001)  # Prometheus buckets are "less than or equal"
    assert h.cumulative()[0] == ("0.001", 1)


def test_requests_are_counted_by_known_command_and_result() -> None:
    counts = RequestCounts(["set", "get"])
    names = [counts.command_name(raw) for raw in (b"SET", b"get", b"GeT", b"FLOOP\x00")]
    assert names == ["set", "get", "get", OTHER_COMMAND]
    counts.record(names, [False, False, True, True], 0.002)
    assert counts.by_command == {
        ("set", "ok"): 1,
        ("get", "ok"): 1,
        ("get", "error"): 1,
        (OTHER_COMMAND, "error"): 1,
    }
    assert counts.latency.count == 4
