"""Shared pytest configuration: hypothesis profiles (CI runs the derandomized one), and a
header line saying whether the Raft core under test is pure Python or compiled."""

import os

from hypothesis import settings

from kvorum.corebuild import describe_raft_core

settings.register_profile("ci", derandomize=True, deadline=None, max_examples=200)
settings.register_profile("dev", deadline=None, max_examples=100)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


def pytest_report_header() -> str:
    return f"kvorum Raft core: {describe_raft_core()} (python3 dev.py compile [--clean] switches)"
