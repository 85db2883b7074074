"""The keyspace cut into groups: which group holds a key, and requests that span groups.

Theory of operation: see :mod:`kvorum.shard.router` (a key's hash slot decides its group) and
:mod:`kvorum.shard.fanout` (a client command whose keys live in several groups becomes one
command per group, and their replies one reply).
"""
