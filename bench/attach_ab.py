#!/usr/bin/env python
# Copyright: cnm.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A/B of cnm_endpoint module time between two checkouts of the collection, on fresh and on configured sandboxes.

    python bench/attach_ab.py --old /path/to/old/collections --new /path/to/new/collections --sizes 50 200 1000

Each path is a collections root (holding ansible_collections/cnm/network). For each N and round, each variant in
turn gets a new lab (bench/attach.py's: a host namespace and N sandboxes with lo up, removed afterwards) and runs
bench/attach.py's three phases (attach, rerun, absent) twice: first on the fresh sandboxes ("fresh"), then on the
same sandboxes again ("again": Docker's sandbox sysctls already set, as in attach.py's later rounds). Alternating
the variants spreads load from elsewhere over both. Prints every sample and the medians, per endpoint.
"""

from __future__ import annotations

import argparse
import signal
import statistics
import sys

import attach  # bench/attach.py (the script's own folder is on sys.path)

PHASES = ("add", "rerun", "delete")
KINDS = ("fresh", "again")


def one_lab(size: int, collections: str) -> dict:
    """Both kinds of runs of one variant on a lab of its own: {kind: {phase: seconds}}."""
    lab = attach.Lab(size, "/tmp")
    try:
        lab.create()
        cnm = attach.Cnm(lab, collections)
        cnm.make_network()
        return {kind: {phase: run["main"] for phase, run in cnm.phases().items()} for kind in KINDS}
    finally:
        lab.destroy()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--old", required=True, help="collections root of the variant to compare against")
    parser.add_argument("--new", required=True, help="collections root of the variant under test")
    parser.add_argument("--sizes", type=int, nargs="+", default=[50, 200, 1000])
    parser.add_argument("--rounds", type=int, nargs="+", default=[5, 3, 2], help="rounds per size, in order")
    options = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_args: sys.exit(1))  # run the labs' cleanup on a kill too
    variants = {"old": options.old, "new": options.new}
    for index, size in enumerate(options.sizes):
        rounds = options.rounds[min(index, len(options.rounds) - 1)]
        samples: dict = {(name, kind): [] for name in variants for kind in KINDS}
        for round_ in range(rounds):
            for name, collections in variants.items():
                for kind, times in one_lab(size, collections).items():
                    samples[(name, kind)].append(times)
                    shown = " ".join("%s %.3f" % (phase, times[phase]) for phase in PHASES)
                    print("N=%d round %d %s %s: %s" % (size, round_ + 1, name, kind, shown), flush=True)
        for (name, kind), runs in samples.items():
            medians = {phase: statistics.median(run[phase] for run in runs) for phase in PHASES}
            per_item = " ".join("%s %.2f ms" % (phase, 1000 * value / size) for phase, value in medians.items())
            print("median N=%d %s %s: %s" % (size, name, kind, per_item), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
