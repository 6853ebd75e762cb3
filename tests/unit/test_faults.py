"""faults.py: CNM_CRASH_AT kills the process at the Nth passage of the named point, and only there; CNM_FAIL_AT raises
an OSError there instead."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from conftest import COLLECTIONS

PROGRAM = """
from ansible_collections.cnm.network.plugins.module_utils import faults
for index in range(1, 4):
    try:
        faults.point("netns-named")
        faults.point("change")
    except OSError as exc:
        print("raised", exc.errno, exc.strerror, flush=True)
    print(index, flush=True)
"""


def run(at, variable="CNM_CRASH_AT", other=None):
    env = {key: value for key, value in os.environ.items() if key not in ("CNM_CRASH_AT", "CNM_FAIL_AT")}
    env["PYTHONPATH"] = COLLECTIONS
    if at is not None:
        env[variable] = at
    if other is not None:
        env.update(other)
    return subprocess.run(
        [sys.executable, "-c", PROGRAM], capture_output=True, text=True, env=env, timeout=30, check=False
    )


def test_without_the_variable_nothing_dies():
    proc = run(None)
    assert (proc.returncode, proc.stdout.split()) == (0, ["1", "2", "3"])


def test_the_nth_passage_of_the_point_is_killed():
    proc = run("change:2")
    assert (proc.returncode, proc.stdout.split()) == (-signal.SIGKILL, ["1"])
    proc = run("netns-named")  # N defaults to 1
    assert (proc.returncode, proc.stdout.split()) == (-signal.SIGKILL, [])


def test_a_point_never_reached_that_often_or_another_name_does_nothing():
    assert run("change:4").returncode == 0
    assert run("netns-unmounted:1").returncode == 0


def test_fail_at_raises_an_oserror_at_the_nth_passage_only():
    proc = run("change:2", "CNM_FAIL_AT")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["1", "raised 5 injected failure (CNM_FAIL_AT=change:2)", "2", "3"]
    proc = run("netns-named", "CNM_FAIL_AT")  # N defaults to 1; the point after it in the same pass is skipped
    assert proc.stdout.splitlines() == ["raised 5 injected failure (CNM_FAIL_AT=netns-named:1)", "1", "2", "3"]


def test_fail_at_a_point_never_reached_that_often_or_another_name_does_nothing():
    assert run("change:4", "CNM_FAIL_AT").stdout.split() == ["1", "2", "3"]
    assert run("netns-unmounted", "CNM_FAIL_AT").stdout.split() == ["1", "2", "3"]


def test_crash_and_fail_count_the_same_passages():
    proc = run("change:3", "CNM_CRASH_AT", {"CNM_FAIL_AT": "change:2"})
    assert proc.returncode == -signal.SIGKILL
    assert proc.stdout.splitlines() == ["1", "raised 5 injected failure (CNM_FAIL_AT=change:2)", "2"]
