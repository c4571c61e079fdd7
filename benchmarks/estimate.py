"""The rates of spino.estimate, fitted from finished runs, and each run's estimate against what it took.

    python benchmarks/estimate.py RESULTS [RESULTS ...]   # e.g. results/demo results/cityscapes-mini
    python benchmarks/estimate.py --check RESULTS ...      # only compare with the shipped rates

For each run: its config (the one its report was written with, results/<run>/settings/config-*.json),
its manifest (what it had to do) and its Snakemake benchmark files (seconds per job). Each rule's
rate and per-job start-up are fitted over the runs by non-negative least squares (seconds = rate x
units + start-up x jobs, units as spino.estimate.rule_work counts them) and printed as the RATES
table to paste into spino/estimate.py, with the speed probe's seconds on this machine. Then each
run's measured seconds per rule beside its estimate from the shipped rates.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np
from scipy.optimize import nnls

from spino.estimate import RATES, estimate, rule_work, speed_probe
from spino.report import manifest_work


def run_config(results: Path) -> dict:
    configs = sorted((results / "settings").glob("config-*.json"), key=lambda p: p.stat().st_mtime)
    if not configs:
        raise SystemExit(f"{results}: no settings/config-*.json (the report rule writes it)")
    return json.loads(configs[-1].read_text())


def measured(results: Path) -> dict[str, float]:
    """Seconds summed over each rule's jobs, from the benchmark files."""
    seconds: dict[str, float] = {}
    for path in sorted((results / "benchmarks").rglob("*.tsv")):
        rule = path.relative_to(results / "benchmarks").parts[0].removesuffix(".tsv")
        with open(path, newline="") as f:
            seconds[rule] = seconds.get(rule, 0.0) + sum(float(r["s"]) for r in csv.DictReader(f, delimiter="\t"))
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", nargs="+", type=Path)
    parser.add_argument("--check", action="store_true", help="only compare the runs with the shipped rates")
    args = parser.parse_args()
    runs = []
    for results in args.results:
        config = run_config(results)
        runs.append(
            (results, config, rule_work(config, manifest_work(results / "manifest.csv", config)), measured(results))
        )
    if not args.check:
        print(f"speed probe on this machine: {speed_probe():.4f} s")
        for rule in RATES:
            rows = [(work[rule], seconds[rule]) for _, _, work, seconds in runs if rule in seconds]
            if not rows:
                continue
            a = np.array([[units, jobs] for (units, jobs), _ in rows], dtype=np.float64)
            (per_unit, per_job), _ = nnls(a, np.array([s for _, s in rows]))
            print(f'    "{rule}": Rate(per_unit={per_unit:.4g}, per_job={per_job:.3g}),  # {len(rows)} runs')
    for results, config, _, seconds in runs:
        guess = estimate(config, manifest_work(results / "manifest.csv", config))
        print(f"{results}:")
        for rule, took in seconds.items():
            print(f"  {rule:22s} took {took:8.1f} s   estimated {guess.get(rule, float('nan')):8.1f} s")


if __name__ == "__main__":
    main()
