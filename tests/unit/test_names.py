"""Endpoint names and aliases (Docker's container name and --network-alias): the checks of the model, the store's
record, and cnm_endpoint's planner over facts (the real runs are in tests/integration/test_names.py)."""

from __future__ import annotations

import pytest
from facts import FactsSession, Runner
from test_planners import APP, LO, WEB_STORE, Machine, attached_web, host_with_web, listing, store_of

from ansible_collections.cnm.network.plugins.module_utils.errors import CnmError
from ansible_collections.cnm.network.plugins.module_utils.model import EndpointSpec, dns_name_problem
from ansible_collections.cnm.network.plugins.module_utils.records import EndpointRecord, RecordError

# ---- the model ----


@pytest.mark.parametrize("name", ["web", "web-1", "db_primary", "a", "api.internal", "A1", "x" * 63, "1st"])
def test_dns_names_that_are_taken(name):
    assert dns_name_problem(name) is None


@pytest.mark.parametrize(
    "name, problem",
    [
        ("", "non-empty"),
        ("-web", "labels of 1 to 63"),
        ("web-", "labels of 1 to 63"),
        ("a..b", "labels of 1 to 63"),
        ("web 1", "labels of 1 to 63"),
        ("x" * 64, "labels of 1 to 63"),
        ("web/1", "labels of 1 to 63"),
        (".".join(["x" * 60] * 5), "at most 253"),
        (5, "non-empty text"),
    ],
)
def test_dns_names_that_are_refused_say_why(name, problem):
    assert problem in dns_name_problem(name)


def spec(**params) -> EndpointSpec:
    return EndpointSpec.from_params(dict({"network": "web"}, **params))


def test_the_name_defaults_to_the_namespaces_or_containers_own():
    assert spec(netns="web1").name == "web1"
    assert spec(container="api_1").name == "api_1"
    assert spec(netns="web1", name="front").name == "front"
    assert spec(pid=4242).name is None  # a pid or a path names no one
    assert spec(netns_path="/proc/4242/ns/net").name is None
    assert spec(pid=4242, name="worker").name == "worker"
    assert spec(netns="bad.-name").name is None  # the namespace's name is no DNS name: none by default


def test_aliases_keep_their_order_without_repeats_compared_without_case():
    assert spec(netns="a", aliases=["db", "cache", "DB", "cache"]).aliases == ("db", "cache")


@pytest.mark.parametrize(
    "params, option, text",
    [
        (dict(netns="a", name="no good"), "name", "is not a DNS name"),
        (dict(netns="a", aliases=["ok", "-bad"]), "aliases[1]", "is not a DNS name"),
        (dict(netns="a", aliases="web"), "aliases", "must be a list of DNS names"),
        (dict(network="host", netns="a", name="x"), "name", "cannot be used with network 'host'"),
        (dict(network="none", netns="a", aliases=["x"]), "aliases", "cannot be used with network 'none'"),
    ],
)
def test_bad_names_are_refused_naming_the_option(params, option, text):
    with pytest.raises(CnmError) as caught:
        spec(**params)
    assert caught.value.details["option"] == option and text in str(caught.value)


def test_the_host_and_none_networks_give_no_default_name():
    assert spec(network="host", netns="h").name is None and spec(network="none", netns="n").name is None


def test_an_items_options_are_named_with_its_place_in_the_list():
    with pytest.raises(CnmError) as caught:
        EndpointSpec.from_params({"network": "web", "netns": "a", "name": "x y"}, "endpoints[2].")
    assert caught.value.details["option"] == "endpoints[2].name"


# ---- the store's record ----


def test_a_record_keeps_its_name_and_aliases_and_older_records_read_back_unchanged():
    named = dict(APP, name="api", aliases=["backend", "web"])
    assert EndpointRecord.from_dict(named).to_dict() == named
    older = {key: value for key, value in APP.items() if key != "name"}
    record = EndpointRecord.from_dict(older)
    assert record.name is None and record.aliases == () and record.to_dict() == older


@pytest.mark.parametrize(
    "bad, text",
    [({"name": 5}, "endpoint.name must be a string"), ({"aliases": ["a", 1]}, "endpoint.aliases[1] must be a string")],
)
def test_a_record_with_a_wrong_name_or_alias_is_refused_naming_the_field(bad, text):
    with pytest.raises(RecordError, match=text.replace("[", r"\[").replace("]", r"\]")):
        EndpointRecord.from_dict(dict(APP, **bad))


# ---- cnm_endpoint's planner ----


@pytest.fixture
def runner(tmp_path, monkeypatch) -> Runner:
    return Runner(tmp_path, monkeypatch)


def app_named(runner, record: dict, **args):
    """cnm_endpoint for the attached sandbox app, its store record ``record``, with ``args``."""
    return runner.run(attached_web(), "cnm_endpoint", store=store_of(app=record), network="web", netns="app", **args)


def test_a_rename_and_new_aliases_change_only_the_store(runner):
    run = app_named(runner, APP, name="api", aliases=["backend"])

    assert not run.failed, run.result
    assert run.changes == [("store", "write the store")]
    assert run.state["endpoints"]["web|netns:app"] == dict(APP, name="api", aliases=["backend"])
    assert run.result["endpoint"]["name"] == "api" and run.result["endpoint"]["aliases"] == ["backend"]
    before, after = run.diff["before"]["store"], run.diff["after"]["store"]
    assert before["endpoints"]["web|netns:app"]["name"] == "app"
    assert after["endpoints"]["web|netns:app"]["aliases"] == ["backend"]


def test_a_rerun_with_the_same_name_and_aliases_plans_nothing(runner):
    run = app_named(runner, dict(APP, name="api", aliases=["backend"]), name="api", aliases=["backend"])

    assert run.changes == []


def test_a_name_another_endpoint_of_the_network_holds_is_refused_and_nothing_is_planned(runner):
    machine = attached_web()
    machine.sandboxes["netns:other"] = FactsSession("other", (LO,))

    run = runner.run(machine, "cnm_endpoint", store=store_of(app=APP), network="web", netns="other", name="APP")

    assert run.failed and run.changes == []
    assert run.result["msg"].startswith(
        "option 'name': APP is already the DNS name of endpoint netns:app on network web"
    )


def test_two_items_of_one_list_cannot_share_a_name_but_can_share_an_alias(runner):
    machine = Machine(host_with_web(), ruleset=listing("web"))
    endpoints = [{"netns": "a", "aliases": ["web"]}, {"netns": "b", "aliases": ["web"]}]

    shared = runner.run(machine, "cnm_endpoint", store=WEB_STORE, network="web", endpoints=endpoints)
    assert not shared.failed, shared.result
    assert [e["aliases"] for e in shared.result["endpoints"]] == [["web"], ["web"]]
    assert [e["name"] for e in shared.result["endpoints"]] == ["a", "b"]

    clash = runner.run(
        machine, "cnm_endpoint", store=WEB_STORE, network="web", endpoints=[{"netns": "a"}, {"netns": "b", "name": "a"}]
    )
    assert (
        clash.failed
        and "option 'endpoints[1].name': a is already the DNS name of endpoint netns:a" in clash.result["msg"]
    )


def test_an_alias_never_stands_for_another_endpoint_s_name_nor_a_name_for_another_s_alias(runner):
    machine = Machine(host_with_web(), ruleset=listing("web"))

    alias_on_name = runner.run(
        machine,
        "cnm_endpoint",
        store=WEB_STORE,
        network="web",
        endpoints=[{"netns": "a", "name": "db"}, {"netns": "b", "aliases": ["cache", "DB"]}],
    )
    assert alias_on_name.failed  # planning stopped: nothing of the plan ran
    assert alias_on_name.result["msg"].startswith(
        "option 'endpoints[1].aliases': DB is already the DNS name of endpoint netns:a on network web"
    )

    name_on_alias = runner.run(
        machine,
        "cnm_endpoint",
        store=WEB_STORE,
        network="web",
        endpoints=[{"netns": "a", "aliases": ["db"]}, {"netns": "b", "name": "db"}],
    )
    assert name_on_alias.failed
    assert name_on_alias.result["msg"].startswith(
        "option 'endpoints[1].name': db is already the alias of endpoint netns:a on network web"
    )


def test_a_renamed_endpoint_frees_its_old_name_for_an_alias_in_the_same_run(runner):
    machine = attached_web()
    machine.sandboxes["netns:other"] = FactsSession("other", (LO,))
    endpoints = [{"netns": "app", "name": "api"}, {"netns": "other", "aliases": ["app"]}]

    run = runner.run(machine, "cnm_endpoint", store=store_of(app=APP), network="web", endpoints=endpoints)

    assert not run.failed, run.result
    assert run.state["endpoints"]["web|netns:other"]["aliases"] == ["app"]


def test_a_detached_endpoint_frees_its_name_in_the_same_run(runner):
    endpoints = [{"netns": "app", "state": "absent"}, {"netns": "other", "name": "app"}]
    machine = attached_web()

    run = runner.run(machine, "cnm_endpoint", store=store_of(app=APP), network="web", endpoints=endpoints)

    assert not run.failed, run.result
    assert run.state["endpoints"]["web|netns:other"]["name"] == "app" and "web|netns:app" not in run.state["endpoints"]
