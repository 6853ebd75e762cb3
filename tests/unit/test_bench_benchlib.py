"""bench/benchlib.py's pure logic, which every benchmark's table and medians rest on."""

from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "bench"))
benchlib = pytest.importorskip("benchlib")


def test_median_of_numbers_ignores_none():
    assert benchlib.median([3, None, 1, 2]) == 2
    assert benchlib.median([4.0, 1.0, 3.0, 2.0]) == 2.5
    assert benchlib.median([None]) is None
    assert benchlib.median([]) is None


def test_median_of_texts_is_the_middle_one():
    # bench/ports.py keeps portmap's CHECK error message per round: its "median" is one of the messages.
    assert benchlib.median(["b", "a"]) == "b"
    assert benchlib.median(["c", "a", "b"]) == "b"


def test_samples_keep_every_round_and_give_medians():
    samples = benchlib.Samples()
    for add, rerun in ((0.3, None), (0.1, None), (0.2, 0.5)):
        samples.keep("cnm module", {"add": add, "rerun": rerun})
    assert samples == {"cnm module": {"add": [0.3, 0.1, 0.2], "rerun": [None, None, 0.5]}}
    assert samples.medians() == {"cnm module": {"add": 0.2, "rerun": 0.5}}


def test_phase_table_lines_keep_their_columns():
    assert benchlib.phase_header(13, "note") == "    N  tool               add    rerun   delete   note"
    row = {"add": 0.12345, "rerun": None, "delete": 2.0}
    assert benchlib.phase_line(200, 13, "cnm module", row, "x") == "  200  cnm module       0.123        -    2.000   x"
    assert benchlib.phase_line(5, 12, "CNI portmap", row, "") == "    5  CNI portmap     0.123        -    2.000   "


def test_measured_tools_in_order_and_issue_figures_at_200_only():
    results = {"b": {"add": 1}, "a": {"add": 2}, "c": None}
    assert benchlib.measured(results, ["a", "b", "c", "d"]) == [("a", {"add": 2}), ("b", {"add": 1})]
    targets, references = {"cnm module": {"add": 0.3}}, {"CNI portmap": {"add": 8.1}}
    assert benchlib.issue_figures(200, "cnm module", targets, references) == ({"add": 0.3}, None)
    assert benchlib.issue_figures(200, "CNI portmap", targets, references) == (None, {"add": 8.1})
    assert benchlib.issue_figures(50, "cnm module", targets, references) == (None, None)


def test_process_overhead_line():
    results = {
        "cnm process": {"add": 1.5, "rerun": 1.0, "delete": 0.75},
        "cnm module": {"add": 0.5, "rerun": 0.25, "delete": 0.5},
    }
    assert benchlib.process_overhead(7, results) == [
        "    7    cnm process minus main(): 1.000 / 0.750 / 0.250 s (nsenter, Python start-up, imports, exit; medians)"
    ]
    assert benchlib.process_overhead(7, {"cnm module": results["cnm module"]}) == []


def test_sizes_parser_and_common_checks(monkeypatch):
    parser = benchlib.sizes_parser("d", "endpoints", [200], "cnm_port_publish")
    options = parser.parse_args(["--sizes", "2", "3", "--no-profile"])
    assert (options.sizes, options.repeat, options.no_profile, options.json) == ([2, 3], 3, True, None)
    assert "--no-profile" not in benchlib.sizes_parser("d", "ports", [1]).format_help()
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    benchlib.check_common(parser, options, 50000)
    with pytest.raises(SystemExit):
        benchlib.check_common(parser, parser.parse_args(["--sizes", "0"]), 50000)
    with pytest.raises(SystemExit):
        benchlib.check_common(parser, parser.parse_args(["--repeat", "0"]), 50000)
