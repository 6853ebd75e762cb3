"""Plan: ordered changes with undo; check mode applies nothing; the diff is rendered from the plan."""

from __future__ import annotations

import errno

import pytest

from ansible_collections.cnm.network.plugins.module_utils.errors import CnmError, Gone
from ansible_collections.cnm.network.plugins.module_utils.plan import Op, Plan
from ansible_collections.cnm.network.plugins.module_utils.sandbox import HOST


class Journal:
    """Records what the plan's actions did, in order."""

    def __init__(self) -> None:
        self.events: list = []

    def action(self, name: str):
        return lambda: self.events.append(name)

    def failing(self, exc: BaseException):
        def fail():
            self.events.append("fail")
            raise exc

        return fail


def plan_of(journal: Journal, *names: str) -> Plan:
    plan = Plan()
    for name in names:
        plan.add(
            "object %s" % name,
            "make %s" % name,
            None,
            {"name": name},
            journal.action("do " + name),
            journal.action("undo " + name),
        )
    return plan


def test_execute_applies_changes_in_order():
    journal = Journal()
    plan_of(journal, "a", "b", "c").execute(check=False)
    assert journal.events == ["do a", "do b", "do c"]


def test_check_mode_applies_nothing_but_reports_the_changes():
    journal = Journal()
    plan = plan_of(journal, "a", "b")
    plan.execute(check=True)
    assert journal.events == []
    assert plan.changed is True
    assert plan.summary() == ["make a", "make b"]


def test_an_empty_plan_is_not_a_change():
    plan = Plan()
    plan.execute(check=False)
    assert plan.changed is False and plan.summary() == [] and plan.diff() == {"before": {}, "after": {}}


def test_failure_undoes_the_applied_changes_in_reverse_and_stops():
    journal = Journal()
    plan = plan_of(journal, "a", "b")
    plan.add("object c", "make c", None, {}, journal.failing(RuntimeError("boom")), journal.action("undo c"))
    plan.add("object d", "make d", None, {}, journal.action("do d"), journal.action("undo d"))
    with pytest.raises(CnmError):
        plan.execute(check=False)
    assert journal.events == ["do a", "do b", "fail", "undo b", "undo a"]


def test_failure_message_names_the_failed_change_and_how_many_were_undone():
    journal = Journal()
    plan = plan_of(journal, "a", "b")
    plan.add("object c", "make c", None, {}, journal.failing(RuntimeError("boom")))
    with pytest.raises(CnmError) as raised:
        plan.execute(check=False)
    assert str(raised.value) == "make c failed: boom; undid 2 earlier change(s)"
    assert raised.value.details == {"failed_change": "object c"}


def test_failure_of_the_first_change_undoes_nothing_and_says_nothing_about_undoing():
    journal = Journal()
    plan = Plan()
    plan.add("object a", "make a", None, {}, journal.failing(RuntimeError("boom")), journal.action("undo a"))
    with pytest.raises(CnmError) as raised:
        plan.execute(check=False)
    assert str(raised.value) == "make a failed: boom"
    assert journal.events == ["fail"]  # the failed change itself is not undone


def test_undo_errors_are_reported_and_the_rest_is_still_undone():
    journal = Journal()
    plan = Plan()
    plan.add("object a", "make a", None, {}, journal.action("do a"), journal.action("undo a"))
    plan.add(
        "object b",
        "make b",
        None,
        {},
        journal.action("do b"),
        journal.failing(OSError(errno.EBUSY, "Device or resource busy")),
    )
    plan.add("object c", "make c", None, {}, journal.failing(RuntimeError("boom")))
    with pytest.raises(CnmError) as raised:
        plan.execute(check=False)
    assert journal.events == ["do a", "do b", "fail", "fail", "undo a"]
    assert (
        str(raised.value) == "make c failed: boom; undid 1 earlier change(s); undo incomplete: object b: "
        "Device or resource busy (errno 16)"
    )


def test_changes_without_an_undo_are_skipped_when_undoing():
    journal = Journal()
    plan = Plan()
    plan.add("object a", "make a", None, {}, journal.action("do a"), journal.action("undo a"))
    plan.add("object a", "set a up", None, {}, journal.action("up a"))
    plan.add("object b", "make b", None, {}, journal.failing(RuntimeError("boom")))
    with pytest.raises(CnmError):
        plan.execute(check=False)
    assert journal.events == ["do a", "up a", "fail", "undo a"]


def test_an_errno_style_failure_is_reported_with_its_code():
    journal = Journal()
    plan = Plan()
    plan.add("object a", "make a", None, {}, journal.failing(OSError(errno.EEXIST, "File exists")))
    with pytest.raises(CnmError, match=r"^make a failed: File exists \(errno 17\)$"):
        plan.execute(check=False)


def test_a_core_error_is_reported_with_its_own_message():
    journal = Journal()
    plan = Plan()
    plan.add("object a", "make a", None, {}, journal.failing(CnmError("no interface eth0 in sandbox a")))
    with pytest.raises(CnmError, match=r"^make a failed: no interface eth0 in sandbox a$"):
        plan.execute(check=False)


def test_an_exception_without_text_is_reported_by_its_type():
    journal = Journal()
    plan = Plan()
    plan.add("object a", "make a", None, {}, journal.failing(KeyError()))
    with pytest.raises(CnmError, match=r"^make a failed: KeyError$"):
        plan.execute(check=False)


def test_the_original_exception_is_chained():
    journal = Journal()
    plan = Plan()
    original = RuntimeError("boom")
    plan.add("object a", "make a", None, {}, journal.failing(original))
    with pytest.raises(CnmError) as raised:
        plan.execute(check=False)
    assert raised.value.__cause__ is original


def test_diff_merges_changes_of_one_target_first_before_last_after():
    plan = Plan()
    plan.add("bridge", "set mtu", {"mtu": 1500, "up": False}, {"mtu": 1400, "up": False}, lambda: None)
    plan.add("bridge", "set up", {"mtu": 1400, "up": False}, {"mtu": 1400, "up": True}, lambda: None)
    plan.add("store", "write the store", {"n": 1}, {"n": 2}, lambda: None)
    assert plan.diff() == {
        "before": {"bridge": {"mtu": 1500, "up": False}, "store": {"n": 1}},
        "after": {"bridge": {"mtu": 1400, "up": True}, "store": {"n": 2}},
    }


def test_diff_drops_objects_that_did_not_exist_before_or_do_not_exist_after():
    plan = Plan()
    plan.add("netns a", "create a", None, {"exists": True}, lambda: None)
    plan.add("veth b", "delete b", {"mtu": 1500}, None, lambda: None)
    assert plan.diff() == {"before": {"veth b": {"mtu": 1500}}, "after": {"netns a": {"exists": True}}}


def test_diff_of_an_object_created_then_changed_keeps_no_before():
    plan = Plan()
    plan.add("bridge", "create", None, {"mtu": 1500}, lambda: None)
    plan.add("bridge", "add address", None, {"mtu": 1500, "addresses": ["172.30.0.1/24"]}, lambda: None)
    assert plan.diff() == {"before": {}, "after": {"bridge": {"mtu": 1500, "addresses": ["172.30.0.1/24"]}}}


def test_diff_and_summary_are_the_same_in_check_mode_and_real_run():
    journal = Journal()
    checked, real = plan_of(journal, "a", "b"), plan_of(journal, "a", "b")
    checked.execute(check=True)
    real.execute(check=False)
    assert (checked.diff(), checked.summary()) == (real.diff(), real.summary())


def test_the_diff_merges_every_change_of_one_object():
    """A new network: the bridge made, then its IPv6 sysctl set - the diff shows both, and no before (it did not
    exist)."""
    plan = Plan()
    noop = Journal().action("x")
    plan.add("network web", "create bridge br-web", None, {"bridge": "br-web", "mtu": 1500}, noop)
    plan.add("network web", "set disable_ipv6", {"disable_ipv6": None}, {"disable_ipv6": "1"}, noop)
    plan.add(
        "sandbox a",
        "remove default route",
        {"default_ipv4": "eth0 via 10.0.0.1", "sysctls": {}},
        {"default_ipv4": None},
        noop,
    )
    plan.add("sandbox a", "set a sysctl", {"sysctls": {"x": "0"}, "other": 1}, {"sysctls": {"x": "1"}}, noop)
    assert plan.diff() == {
        "before": {"sandbox a": {"default_ipv4": "eth0 via 10.0.0.1", "sysctls": {}, "other": 1}},
        "after": {
            "network web": {"bridge": "br-web", "mtu": 1500, "disable_ipv6": "1"},
            "sandbox a": {"default_ipv4": None, "sysctls": {"x": "1"}},
        },
    }


def test_the_diff_of_an_object_removed_last_has_no_after():
    plan = Plan()
    noop = Journal().action("x")
    plan.add("network web", "detach port", {"bridge": "br-web", "ports": 1}, {"bridge": "br-web", "ports": 0}, noop)
    plan.add("network web", "delete bridge", {"bridge": "br-web", "mtu": 1500}, None, noop)
    assert plan.diff() == {"before": {"network web": {"bridge": "br-web", "ports": 1, "mtu": 1500}}, "after": {}}
    plan.add("network web", "create bridge", None, {"bridge": "br-web"}, noop)
    assert plan.diff()["after"] == {"network web": {"bridge": "br-web"}}


GONE = [
    Gone("no interface br-x in the host"),
    OSError(errno.ENODEV, "No such device"),
    FileNotFoundError(errno.ENOENT, "No such file"),
    OSError(errno.EADDRNOTAVAIL, "Cannot assign"),
    OSError(errno.ESRCH, "No such process"),
]


@pytest.mark.parametrize("exc", GONE, ids=["gone", "enodev", "enoent", "eaddrnotavail", "esrch"])
def test_an_undo_that_meets_its_object_gone_moves_on(exc):
    """Undo of a step whose object went (a device deleted with its sandbox) is done, not an incomplete undo."""
    journal = Journal()
    plan = Plan()
    plan.add("object a", "make a", None, {}, journal.action("do a"), journal.failing(exc))
    plan.add("object b", "make b", None, {}, journal.action("do b"), journal.action("undo b"))
    plan.add("object c", "make c", None, {}, journal.failing(OSError(errno.EPERM, "Operation not permitted")))
    with pytest.raises(CnmError) as failure:
        plan.execute(check=False)
    assert journal.events == ["do a", "do b", "fail", "undo b", "fail"]
    assert "undid 2 earlier change(s)" in str(failure.value) and "undo incomplete" not in str(failure.value)


def test_an_undo_that_fails_otherwise_is_reported():
    journal = Journal()
    plan = Plan()
    busy = OSError(errno.EBUSY, "Device or resource busy")
    plan.add("object a", "make a", None, {}, journal.action("do a"), journal.failing(busy))
    plan.add("object c", "make c", None, {}, journal.failing(OSError(errno.EPERM, "Operation not permitted")))
    with pytest.raises(CnmError) as failure:
        plan.execute(check=False)
    assert "undo incomplete: object a: Device or resource busy (errno 16)" in str(failure.value)


def test_a_failed_run_reports_the_records_its_lasting_changes_removed():
    """A record goes from the store only when every change that removes a part of it stays done."""
    journal = Journal()
    plan = Plan()
    plan.add(
        "veths",
        "delete veths",
        {},
        None,
        journal.action("veths"),
        forgets=(("endpoint", "web|a"), ("endpoint", "web|b")),
    )
    plan.add("network web", "delete bridge br-web", {}, None, journal.action("bridge"), forgets=(("network", "web"),))
    plan.add("overlay web", "delete vxlan vx-web", {}, None, journal.action("vxlan"), forgets=(("network", "web"),))
    plan.add("firewall", "apply", None, None, journal.action("fw"), journal.action("undo fw"))
    plan.add("store", "write the store", None, None, journal.failing(OSError(errno.EIO, "Input/output error")))
    with pytest.raises(CnmError) as failure:
        plan.execute(check=False)
    assert journal.events == ["veths", "bridge", "vxlan", "fw", "fail", "undo fw"]
    assert plan.forgotten() == ([("endpoint", "web|a"), ("endpoint", "web|b"), ("network", "web")], [])
    assert str(failure.value) == (
        "write the store failed: Input/output error (errno 5); undid 1 earlier change(s); "
        "stays done: delete veths; delete bridge br-web; delete vxlan vx-web"
    )


def test_a_record_partly_removed_stays_and_an_undone_removal_is_not_forgotten():
    journal = Journal()
    plan = Plan()
    plan.add("network web", "delete bridge br-web", {}, None, journal.action("bridge"), forgets=(("network", "web"),))
    plan.add(
        "ipsec",
        "delete xfrm state",
        {},
        None,
        journal.action("xfrm"),
        journal.action("undo xfrm"),
        forgets=(("network", "web"), ("network", "other")),
    )
    plan.add(
        "overlay web",
        "delete vxlan vx-web",
        {},
        None,
        journal.failing(RuntimeError("boom")),
        forgets=(("network", "web"),),
    )
    with pytest.raises(CnmError):
        plan.execute(check=False)
    assert plan.forgotten() == ([], [("network", "web")])  # the undone xfrm change keeps "other" whole


def test_a_removal_whose_undo_fails_stays_done():
    journal = Journal()
    plan = Plan()
    plan.add(
        "route",
        "remove route",
        {},
        None,
        journal.action("route"),
        journal.failing(OSError(errno.ENODEV, "No such device")),
        forgets=(("endpoint", "lan|a"),),
    )
    plan.add("store", "write the store", None, None, journal.failing(RuntimeError("boom")))
    with pytest.raises(CnmError) as failure:
        plan.execute(check=False)
    assert plan.forgotten() == ([("endpoint", "lan|a")], [])
    assert "undid 1 earlier change(s)" in str(failure.value)  # its object is gone: nothing was left to put back


# ---- changes as data (Op): words and undo come from the verb ----


def test_sync_removes_then_adds_and_words_each_change_from_its_op():
    plan = Plan()
    plan.sync(
        "endpoint web on netns:app",
        None,
        {},
        "netns:app",
        "add_address",
        [("eth0", "10.0.0.2/24"), ("eth0", "10.0.0.9/24")],
        [("eth0", "10.0.0.3/24"), ("eth0", "10.0.0.9/24")],
    )
    assert plan.summary() == [
        "remove address 10.0.0.2/24 from eth0 in app",
        "add address 10.0.0.3/24 to eth0 in app",
    ]
    assert [change.apply for change in plan.changes] == [
        Op("netns:app", "delete_address", ("eth0", "10.0.0.2/24")),
        Op("netns:app", "add_address", ("eth0", "10.0.0.3/24")),
    ]
    assert [change.undo for change in plan.changes] == [
        Op("netns:app", "add_address", ("eth0", "10.0.0.2/24")),
        Op("netns:app", "delete_address", ("eth0", "10.0.0.3/24")),
    ]


def test_ops_on_the_host_name_no_namespace_and_objects_render_through_describe():
    class Route:
        def describe(self):
            return "10.1.0.0/16 via 10.0.0.1"

    assert Op(HOST, "add_route", ("shim", Route())).what == "add route 10.1.0.0/16 via 10.0.0.1 through shim"
    assert Op(HOST, "delete_neighbour", ("vx", "02:00:0a:00:00:02", "10.0.0.2")).what == (
        "remove neighbour 10.0.0.2 lladdr 02:00:0a:00:00:02"
    )
    assert Op("container:docker/web1", "add_fdb", ("vx", "00:00:00:00:00:00", "192.0.2.2")).what == (
        "add fdb 00:00:00:00:00:00 dst 192.0.2.2 in web1"
    )


def test_the_executor_runs_ops_and_undoes_them_with_their_inverse_on_a_failure():
    ran = []

    def executor(op):
        ran.append((op.verb, op.args))
        if op.args == ("eth0", "bad"):
            raise OSError(errno.EINVAL, "Invalid argument")

    plan = Plan(executor=executor)
    plan.sync("endpoint", None, {}, HOST, "add_address", [("eth0", "old")], [("eth0", "new"), ("eth0", "bad")])
    with pytest.raises(CnmError, match=r"add address bad to eth0 failed: Invalid argument \(errno 22\); undid 2"):
        plan.execute(check=False)
    assert ran == [
        ("delete_address", ("eth0", "old")),
        ("add_address", ("eth0", "new")),
        ("add_address", ("eth0", "bad")),
        ("delete_address", ("eth0", "new")),
        ("add_address", ("eth0", "old")),
    ]


def test_sync_of_ten_thousand_entries_compares_sets_not_lists():
    """An overlay's FDB grows with every remote endpoint: of 10,000 entries only the difference is changed."""
    present = [("vx", "02:00:00:00:%02x:%02x" % divmod(i, 256), "192.0.2.1") for i in range(10000)]
    wanted = present[1:] + [("vx", "02:00:00:01:00:00", "192.0.2.2")]
    plan = Plan()
    plan.sync("network ov", None, {}, HOST, "add_fdb", present, wanted)
    assert plan.summary() == ["remove fdb 02:00:00:00:00:00 dst 192.0.2.1", "add fdb 02:00:00:01:00:00 dst 192.0.2.2"]


def test_an_op_with_keyword_arguments_is_a_frozen_value_that_prints_as_its_call():
    op = Op.call(HOST, "set_link", "br-web", mtu=1400, up=True)
    assert op == Op(HOST, "set_link", ("br-web",), (("mtu", 1400), ("up", True)))
    assert repr(op) == "Op(where='host', verb='set_link', args=('br-web',), kwargs=(('mtu', 1400), ('up', True)))"
    assert hash(op) == hash(Op(HOST, "set_link", ("br-web",), (("mtu", 1400), ("up", True))))
    with pytest.raises(AttributeError):
        op.verb = "delete_link"  # frozen
    # a verb without words in VERBS (its change carries its own) still says what it does
    assert op.what == "set_link br-web mtu=1400 up=True"
    assert Op.call("netns:app", "set_link", "eth0", up=True).what == "set_link eth0 up=True in app"
    assert Op(HOST, "delete_link", ("ve-1",)).what == "delete_link ve-1"


def test_the_executor_runs_ops_with_their_keyword_arguments_and_undoes_them_with_a_second_op():
    ran = []
    plan = Plan(executor=lambda op: ran.append((op.where, op.verb, op.args, dict(op.kwargs))))
    plan.add(
        "network web",
        "set bridge br-web mtu 1400 up",
        None,
        None,
        Op.call(HOST, "set_link", "br-web", mtu=1400, up=True),
        Op.call(HOST, "set_link", "br-web", mtu=1500),
    )
    plan.add("network web", "fail", None, None, Journal().failing(OSError(errno.EINVAL, "Invalid")))
    with pytest.raises(CnmError, match="fail failed: Invalid"):
        plan.execute(check=False)
    assert ran == [
        (HOST, "set_link", ("br-web",), {"mtu": 1400, "up": True}),
        (HOST, "set_link", ("br-web",), {"mtu": 1500}),
    ]


def test_a_sysctl_write_has_no_inverse_of_the_same_arguments_its_undo_is_an_op_of_its_own():
    write = Op(HOST, "write_sysctl", ("net/ipv4/ip_unprivileged_port_start", "0"))
    assert write.what == "set net/ipv4/ip_unprivileged_port_start=0"
    with pytest.raises(CnmError, match="write_sysctl has no inverse"):
        write.inverse()
    undo = Op(HOST, "write_sysctl", ("net/ipv4/ip_unprivileged_port_start", "1024"))
    ran = []
    plan = Plan(executor=ran.append)
    plan.add("sandbox", "set it", None, None, write, undo)
    plan.run(plan.changes[0].apply)
    plan.run(plan.changes[0].undo)
    assert ran == [write, undo]


# ---- batches: consecutive FDB / neighbour Ops of one namespace run as one batch (Plan.batch_executor) ----


class EntryKernel:
    """FDB entries as a set, with a per-Op executor and a batch executor that refuses the entries in ``refuse``
    (EEXIST) and, without keep_going, stops after a send of ``per_send`` Ops holding a refusal - as the kernel does."""

    def __init__(self, refuse=(), per_send: int = 3) -> None:
        self.entries: set = set()
        self.refuse = set(refuse)
        self.per_send = per_send
        self.calls: list = []

    def apply(self, op: Op) -> None:
        if op.args in self.refuse:
            raise OSError(errno.EEXIST, "File exists")
        if op.verb.startswith("add_"):
            self.entries.add(op.args)
        elif op.args in self.entries:
            self.entries.remove(op.args)
        else:
            raise OSError(errno.ENOENT, "No such file or directory")

    def run(self, op: Op) -> None:
        self.calls.append(("op", op.verb, op.args[1]))
        self.apply(op)

    def run_batch(self, ops: list, keep_going: bool) -> list:
        assert len({(op.where, op.verb) for op in ops}) == 1
        self.calls.append(("batch", ops[0].verb, [op.args[1] for op in ops]))
        results = []
        for start in range(0, len(ops), self.per_send):
            for op in ops[start : start + self.per_send]:
                try:
                    self.apply(op)
                    results.append(None)
                except OSError as exc:
                    results.append(exc)
            if not keep_going and any(results):
                break
        return results


def fdb_plan(kernel: EntryKernel, macs: list, after: tuple = ()) -> Plan:
    plan = Plan(executor=kernel.run, batch_executor=kernel.run_batch)
    plan.sync("overlay ov", None, {}, HOST, "add_fdb", [], [("vx-ov", mac, "192.0.2.12") for mac in macs])
    for mac in after:
        plan.op("overlay ov", None, {}, Op.call(HOST, "add_neighbour", "vx-ov", mac, "10.0.0.1"))
    return plan


def test_consecutive_fdb_entries_are_added_in_one_batch_and_other_verbs_apart():
    kernel = EntryKernel()
    plan = fdb_plan(kernel, ["m1", "m2", "m3", "m4"], after=("n1",))
    plan.execute(check=False)
    assert kernel.calls == [("batch", "add_fdb", ["m1", "m2", "m3", "m4"]), ("op", "add_neighbour", "n1")]
    assert len(kernel.entries) == 5
    assert plan.summary()[0] == "add fdb m1 dst 192.0.2.12"  # the words of each entry, as before


def test_check_mode_sends_no_batch():
    kernel = EntryKernel()
    plan = fdb_plan(kernel, ["m1", "m2"])
    plan.execute(check=True)
    assert kernel.calls == [] and plan.changed


def test_a_refusal_in_a_batch_undoes_every_entry_applied_and_names_the_refused_one():
    kernel = EntryKernel(refuse={("vx-ov", "m5", "192.0.2.12")}, per_send=3)
    plan = fdb_plan(kernel, ["m%d" % n for n in range(1, 9)])
    with pytest.raises(CnmError) as caught:
        plan.execute(check=False)
    # m4 to m6 went in one send: m4 and m6 were applied with the refused m5, m7 and m8 were never sent.
    assert str(caught.value) == "add fdb m5 dst 192.0.2.12 failed: File exists (errno 17); undid 5 earlier change(s)"
    assert caught.value.details == {"failed_change": "overlay ov"}
    assert kernel.entries == set()
    assert kernel.calls[1] == ("batch", "delete_fdb", ["m6", "m4", "m3", "m2", "m1"])  # the undo, in reverse
    assert plan.stayed == []


def test_an_injected_failure_in_a_batch_runs_the_entries_before_it_then_undoes_them(monkeypatch):
    monkeypatch.setenv("CNM_FAIL_AT", "change:3")
    monkeypatch.setattr("ansible_collections.cnm.network.plugins.module_utils.faults._reached", {})
    kernel = EntryKernel()
    with pytest.raises(CnmError, match="add fdb m3 dst 192.0.2.12 failed: injected failure.*undid 2 earlier"):
        fdb_plan(kernel, ["m1", "m2", "m3", "m4"]).execute(check=False)
    assert kernel.calls == [("batch", "add_fdb", ["m1", "m2"]), ("batch", "delete_fdb", ["m2", "m1"])]
    assert kernel.entries == set()


def test_an_undo_batch_that_cannot_run_falls_back_to_one_undo_at_a_time():
    kernel = EntryKernel(refuse={("vx-ov", "m3", "192.0.2.12")})
    plan = fdb_plan(kernel, ["m1", "m2", "m3"])
    real = kernel.run_batch

    def undo_fails(ops, keep_going):
        if ops[0].verb == "delete_fdb":
            raise Gone("no interface vx-ov in the host")
        return real(ops, keep_going)

    plan.batch_executor = undo_fails
    with pytest.raises(CnmError, match="undid 2 earlier change"):
        plan.execute(check=False)
    assert kernel.calls[-2:] == [("op", "delete_fdb", "m2"), ("op", "delete_fdb", "m1")]
    assert kernel.entries == set()


def test_an_undo_that_finds_its_entry_gone_counts_as_undone_but_stays():
    kernel = EntryKernel(refuse={("vx-ov", "m3", "192.0.2.12")})
    plan = fdb_plan(kernel, ["m1", "m2", "m3"])
    real = kernel.run_batch

    def gone_meanwhile(ops, keep_going):
        if ops[0].verb == "delete_fdb":
            kernel.entries.discard(("vx-ov", "m1", "192.0.2.12"))  # deleted by hand meanwhile
        return real(ops, keep_going)

    plan.batch_executor = gone_meanwhile
    with pytest.raises(CnmError, match="undid 2 earlier change") as caught:
        plan.execute(check=False)
    assert "undo incomplete" not in str(caught.value)
    assert [change.what for change in plan.stayed] == ["add fdb m1 dst 192.0.2.12"]
