"""CLUSTER replies from a layout: slot runs with their masters and replicas, Redis's shapes."""

from __future__ import annotations

from kvorum.kv.replies import ErrorReply, Verbatim
from kvorum.shard.cluster_protocol import ClusterLayout, SlotRun, cluster_node_id, cluster_reply

LAYOUT = ClusterLayout(
    cluster_id="c",
    me=2,
    runs=(SlotRun(0, 8191, 1, (2, 3)), SlotRun(8192, 16383, 2, (1, 3))),
    client_addresses={1: "127.0.0.1:7001", 2: "127.0.0.1:7002", 3: "127.0.0.1:7003"},
    epoch=5,
)


def test_node_ids_are_40_hex_characters_and_the_same_on_every_node() -> None:
    a = cluster_node_id("c", 1)
    assert len(a) == 40 and int(a, 16) >= 0
    assert a == cluster_node_id("c", 1) != cluster_node_id("c", 2) != cluster_node_id("d", 2)
    assert cluster_reply(LAYOUT, "myid", []) == cluster_node_id("c", 2).encode()


def test_slots_list_each_run_with_its_master_first() -> None:
    reply = cluster_reply(LAYOUT, "slots", [])
    assert isinstance(reply, list) and len(reply) == 2
    first = reply[0]
    assert isinstance(first, list)
    assert first[:2] == [0, 8191]
    assert first[2] == [b"127.0.0.1", 7001, cluster_node_id("c", 1).encode()]
    assert [entry[1] for entry in first[3:]] == [7002, 7003]  # type: ignore[index]


def test_nodes_show_each_node_once_with_the_runs_it_leads() -> None:
    reply = cluster_reply(LAYOUT, "nodes", [])
    assert isinstance(reply, Verbatim)
    lines = reply.text.splitlines()
    assert len(lines) == 3
    by_port = {line.split()[1].split("@")[0]: line.split() for line in lines}
    assert by_port["127.0.0.1:7001"][8:] == ["0-8191"]
    assert by_port["127.0.0.1:7002"][2] == "myself,master"
    assert by_port["127.0.0.1:7002"][8:] == ["8192-16383"]
    assert by_port["127.0.0.1:7003"][8:] == []


def test_info_says_ok_only_when_every_slot_is_assigned() -> None:
    info = cluster_reply(LAYOUT, "info", [])
    assert isinstance(info, Verbatim) and "cluster_state:ok" in info.text
    partial = ClusterLayout("c", 1, LAYOUT.runs[:1], LAYOUT.client_addresses)
    text = cluster_reply(partial, "info", [])
    assert isinstance(text, Verbatim) and "cluster_state:fail" in text.text


def test_keyslot_and_unknown_subcommands() -> None:
    assert cluster_reply(LAYOUT, "keyslot", [b"foo"]) == 12182  # as Redis computes it
    assert cluster_reply(LAYOUT, "keyslot", [b"{foo}bar"]) == 12182
    assert isinstance(cluster_reply(LAYOUT, "nosuch", []), ErrorReply)
