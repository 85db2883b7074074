"""The seed document's examples as runnable scenarios, looked up by ID.

Theory of operation: every module in this package registers its scenarios with the
``@scenario`` decorator from :mod:`kvorum.scenarios.registry`. ``kvorum scenario list`` imports
every module of the package (so adding a scenario is adding a module, with no central list to
edit) and ``kvorum scenario run ID`` runs one. A scenario prints a readable step-by-step trace
and returns a :class:`~kvorum.scenarios.registry.Verdict`; the CLI prints the closing line
``ID: <outcome> — matches the seed`` (exit 0) or ``— differs from the seed`` (exit 1).
"""

from kvorum.scenarios.registry import Scenario, Verdict, all_scenarios, get, scenario

__all__ = ["Scenario", "Verdict", "all_scenarios", "get", "scenario"]
