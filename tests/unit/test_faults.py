"""faults.py: CNM_CRASH_AT kills the process at the Nth passage of the named point, and only there."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from conftest import COLLECTIONS

PROGRAM = """
from ansible_collections.cnm.network.plugins.module_utils import faults
for index in range(1, 4):
    faults.point("netns-named")
    faults.point("change")
    print(index, flush=True)
"""


def run(at):
    env = {key: value for key, value in os.environ.items() if key != "CNM_CRASH_AT"}
    env["PYTHONPATH"] = COLLECTIONS
    if at is not None:
        env["CNM_CRASH_AT"] = at
    return subprocess.run([sys.executable, "-c", PROGRAM], capture_output=True, text=True, env=env, timeout=30, check=False)


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
