#!/usr/bin/env python3
"""Prints a markdown table of benchmark results (median times) beside the reference's figures and the targets (docs/reference.md).

usage: scripts/bench_table.py RESULTS.jsonl [--device cpu|cuda]
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import attnbench_results  # noqa: E402

# docs/reference.md, "Its measured figures and attnbench's targets": (reference, goal) in ms, per device.
TARGETS = {
    "cpu": {("mha", "full"): (17.8, 18), ("reservoir", "full"): (103, 8), ("mha", "prefix"): (2443, 2200),
            ("mha", "step"): (160, 40), ("reservoir", "step"): (106, 20)},
    "cuda": {("mha", "full"): (0.56, 0.25), ("reservoir", "full"): (103, 0.4), ("mha", "prefix"): (115, 60),
             ("mha", "step"): (49, 6), ("reservoir", "step"): (144, 3)},
}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("results")
    parser.add_argument("--device", default=None)
    args = parser.parse_args()
    rows = [json.loads(line) for line in open(args.results) if line.strip()]
    print("| cell | dtype | mode | median ms | p10-p90 ms | n | reference ms | goal ms | step vs full rel |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        if r.get("status") != "ok":
            print(f"| {r['attention']['name']} | | {r.get('status')} | {r.get('message', '')} | | | | | |")
            continue
        device = r["params"]["run"]["device"]
        if args.device and device != args.device:
            continue
        plugin = r["attention"]["plugin"]
        axes = " ".join(f"{k.split('.')[-1]}={v}" for k, v in sorted(r.get("axes", {}).items()) if k != "attention")
        label = f"{r['attention']['name']} {axes} L={r['params']['data']['seq_len']}".strip()
        consistency = r["metrics"].get("consistency", {}).get("step_vs_full", {}).get("rel_rms")
        for path in attnbench_results.timings():
            mode = path.split(".")[0]
            t = attnbench_results.metric(r, path)
            if not t:
                continue
            ref, goal = TARGETS.get(device, {}).get((plugin, mode), ("", ""))
            if r["params"]["attention"]["params"].get("res_size", 256) != 256 or r["params"]["data"]["seq_len"] != 256:
                ref, goal = "", ""
            cons = f"{consistency:.1e}" if consistency is not None and mode == "step" else ""
            print(f"| {label} | {r.get('dtype', '')} | {mode} | {t['median']:.3f} | {t['p10']:.3f}-{t['p90']:.3f} | {t['n']} "
                  f"| {ref} | {goal} | {cons} |")


if __name__ == "__main__":
    main()
