#!/usr/bin/env python3
"""Measures what the python plugin costs (docs/python-layers.md): writes the MHA weights that
configs/python_bridge.yaml names (E=768, seeded, standard library only), runs that study from scratch and
prints a markdown table: the bridge per step (a Python layer that returns its input) at each width, and
the same MHA by the Python module and by the C++ plugin side by side, with their ratio.

usage: scripts/python_bridge.py [--runner build/runner] [--device cpu|cuda] [--results FILE] [runner options...]
Run from a quiet machine: the numbers are timings."""
import argparse
import json
import os
import random
import struct
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
import attnbench_results  # noqa: E402

STUDY = "configs/python_bridge.yaml"
WEIGHTS = "results/python_bridge/mha_768.safetensors"  # the path the study names


def write_mha_weights(path, e=768, seed=0):
    """A torch.nn.MultiheadAttention state_dict (in_proj_weight, in_proj_bias, out_proj.weight,
    out_proj.bias) of width e as .safetensors, uniform in +-1/sqrt(e)."""
    rng = random.Random(seed)
    bound = e ** -0.5
    shapes = {"in_proj_weight": [3 * e, e], "in_proj_bias": [3 * e], "out_proj.weight": [e, e], "out_proj.bias": [e]}
    header, chunks, offset = {}, [], 0
    for name, shape in shapes.items():
        n = 1
        for s in shape:
            n *= s
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + 4 * n]}
        chunks.append(struct.pack(f"<{n}f", *(rng.uniform(-bound, bound) for _ in range(n))))
        offset += 4 * n
    blob = json.dumps(header).encode()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".tmp", "wb") as f:
        f.write(struct.pack("<Q", len(blob)) + blob + b"".join(chunks))
    os.replace(path + ".tmp", path)


def table(rows):
    """The markdown lines: one per cell, then the Python/C++ ratios of the MHA."""
    lines = ["| cell | device | E | step, per token (median, p10-p90) | all L steps | full forward | step vs full |",
             "|---|---|---|---|---|---|---|"]
    medians = {}
    for r in rows:
        name, e = r["attention"]["name"], r["params"]["data"]["params"]["embed_dim"]
        if r.get("status") != "ok":
            lines.append(f"| {name} | | {e} | {r.get('status')}: {r.get('message', '')} | | | |")
            continue
        per_token = attnbench_results.metric(r, "step.per_token_us")
        steps = attnbench_results.metric(r, "step.time_ms")
        full = attnbench_results.metric(r, "full.time_ms")
        consistency = attnbench_results.metric(r, "consistency.step_vs_full")
        medians[(name, e)] = (steps["median"], full["median"])
        agreement = f"{consistency['rel_rms']:.1e}" if consistency else ""
        lines.append(f"| {name} | {r['params']['run']['device']} | {e} | {per_token['median']:.2f} µs "
                     f"({per_token['p10']:.2f}-{per_token['p90']:.2f}) | {steps['median']:.3f} ms | {full['median']:.3f} ms "
                     f"| {agreement} |")
    if ("MHA-python", 768) in medians and ("MHA", 768) in medians:
        (py_steps, py_full), (cpp_steps, cpp_full) = medians[("MHA-python", 768)], medians[("MHA", 768)]
        lines.append("")
        lines.append(f"MHA E=768, Python / C++: 256 steps {py_steps / cpp_steps:.2f}x, full forward {py_full / cpp_full:.2f}x")
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runner", default="build/runner")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--results", default=None, help="default: results/python_bridge_<device>.jsonl")
    args, runner_args = parser.parse_known_args()
    os.chdir(ROOT)  # the study's paths are relative to the repository
    results = args.results or f"results/python_bridge_{args.device}.jsonl"
    if not os.path.exists(WEIGHTS):
        write_mha_weights(WEIGHTS)
    command = [args.runner, STUDY, "--results", results, "--force", "--set", f"run.device={args.device}", *runner_args]
    done = subprocess.run(command)
    rows = [r for r in attnbench_results.read([results]) if r.get("study") == "python_bridge"]
    print("\n".join(table(attnbench_results.latest_per_cell(rows))))
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
