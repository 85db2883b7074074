"""Deterministic simulation of kvorum clusters, and the checkers that judge its runs."""
