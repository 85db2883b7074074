"""Clients of kvorum: a minimal blocking RESP client for the command line's own use."""
