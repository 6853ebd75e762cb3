"""Endpoint names and aliases on the real kernel: real module runs keep them in the store, cnm_info reports them,
a taken name is refused leaving the kernel as it was, check mode predicts a rename exactly, and a rerun changes
nothing. (Answering for them is the resolver's part.)"""

from __future__ import annotations

NET = dict(name="web", subnet="172.30.0.0/24")


def test_names_and_aliases_are_kept_reported_and_unique(host):
    host.ok("cnm_bridge", **NET)
    a, b = host.sandbox("a"), host.sandbox("b")
    attached = host.ok(
        "cnm_endpoint",
        network="web",
        endpoints=[dict(netns=a, aliases=["web"]), dict(netns=b, name="db", aliases=["web", "store"])],
    )
    assert [(e["name"], e["aliases"]) for e in attached["endpoints"]] == [(a, ["web"]), ("db", ["web", "store"])]

    rerun = host.module(
        "cnm_endpoint",
        network="web",
        endpoints=[dict(netns=a, aliases=["web"]), dict(netns=b, name="db", aliases=["web", "store"])],
    )
    assert rerun["changed"] is False, rerun

    info = host.ok("cnm_info")
    views = {view["netns"]: (view["name"], view["aliases"]) for view in info["endpoints"]}
    assert views == {a: (a, ["web"]), b: ("db", ["web", "store"])}

    before = host.snapshot()
    taken = host.module("cnm_endpoint", network="web", netns=host.sandbox("c"), name="DB")
    assert taken.get("failed") and taken["msg"].startswith(
        "option 'name': DB is already the DNS name of endpoint netns:%s on network web" % b
    )
    assert host.snapshot() == before  # nothing created: no namespace, veth or lease

    args = dict(network="web", netns=b, name="database", aliases=["store"])
    predicted = host.module("cnm_endpoint", check=True, **args)
    assert host.snapshot() == before
    renamed = host.ok("cnm_endpoint", **args)
    assert predicted["changes"] == renamed["changes"] == ["write the store"]
    assert predicted["diff"] == renamed["diff"]
    assert (renamed["endpoint"]["name"], renamed["endpoint"]["aliases"]) == ("database", ["store"])
    assert host.module("cnm_endpoint", **args)["changed"] is False

    # A detach frees the name for the next endpoint of the network.
    host.ok("cnm_endpoint", network="web", netns=b, state="absent")
    again = host.ok("cnm_endpoint", network="web", netns=host.sandbox("c"), name="database")
    assert again["endpoint"]["name"] == "database"
