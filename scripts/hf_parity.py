#!/usr/bin/env python3
"""Parity of attnbench's Hugging Face embedder with transformers, for every family it reads (bert,
distilbert, roberta, xlm-roberta, gpt2), run where transformers is installed (the GPU machine has it).
attnbench's side is tests/tools/hf_dump (CPU, fp32); transformers' side is AutoTokenizer and AutoModel
(CPU, fp32). For each family:
  - fixture: the checkpoint under tests/fixtures/hf/<family> (made by scripts/make_hf_fixtures.py with
    an older transformers): token ids of tests/fixtures/hf/texts.json and of the raw
    data/wiki_sample.xml, and the last hidden state (ids truncated to 64);
  - random strings: --random seeded strings drawn from hard pieces (whitespace kinds, combining marks,
    CJK, emoji sequences, zero-width and control characters, special-token literals, contractions),
    token ids only, with the fixture's tokenizer;
  - full size: a randomly initialised model of the family's base size (bert-base, distilbert-base,
    roberta-base, xlm-roberta-base layers, gpt2) saved with save_pretrained beside the fixture's
    tokenizer, last hidden state of the texts truncated to 512 tokens (gpt2: 1024);
and each --model DIR given (any checkpoint directory, e.g. a real pretrained one) the same way as a
fixture. Bounds: ids identical, max abs difference of the last hidden state <= 1e-4. Prints a table;
exits 1 when a check fails.

usage: scripts/hf_parity.py --dump build/tests/hf_dump [--out DIR] [--random 2000] [--no-full-size]
                            [--family gpt2 ...] [--model DIR ...]
"""
import argparse
import json
import os
import random
import subprocess
import sys
import tempfile

import torch
import transformers
from safetensors.torch import load_file
from transformers import AutoModel, AutoTokenizer

import hf_checkpoint  # beside this script

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
FIXTURES = os.path.join(ROOT, "tests", "fixtures", "hf")
FAMILIES = ["bert", "distilbert", "roberta", "xlm-roberta", "gpt2"]
BOUND = 1e-4
PIECES = (list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,;:!?'\"-()[]{}<>|/$%&*+=_#@~^`")
          + [" ", " ", " ", "  ", "\t", "\n", "\r\n", "\u00a0", "\u2003", "\u3000", "\u2028", "\u0085", "\u000b"]
          + ["é", "ü", "ß", "İ", "Σ", "ǅ", "\u0301", "\u0308", "\u0303", "e\u0301", "a\u0308", "Ａ", "ﬁ", "Ⅻ", "½"]
          + ["中", "文", "日", "本", "한", "국", "の", "ภ", "ع", "ह", "\u094d", "ק"]
          + ["🙂", "👍", "🏽", "\u200d", "👩", "🇫", "🇷", "❤", "\ufe0f", "🥰"]
          + ["\u200b", "\u200c", "\ufeff", "\u00ad", "\u0001", "\u007f", "\ue000", "\u0378"]
          + ["[CLS]", "[SEP]", "[MASK]", "<s>", "</s>", "<mask>", "<pad>", "<unk>", "<|endoftext|>", "'s", "'ll", "'RE"]
          + ["the", "The", " the", "quick", "naïve", "café", "reservoir", "Wikipedia", "12345", "3.14"])


def random_texts(n, seed):
    rng = random.Random(seed)
    return ["".join(rng.choice(PIECES) for _ in range(rng.randint(0, 40))) for _ in range(n)]


def dump(hf_dump, model_dir, texts, out, max_length=0, ids_only=False):
    """attnbench's ids (and hidden states) for `texts`."""
    texts_file = out + ".texts.json"
    with open(texts_file, "w", encoding="utf-8") as f:
        json.dump(texts, f)
    command = [hf_dump, model_dir, texts_file, out, str(max_length)] + (["--ids-only"] if ids_only else [])
    subprocess.run(command, check=True)
    return load_file(out)


def compare(label, model_dir, texts, hf_dump, work, max_length, ids_only=False):
    """One row of the table: ids of every text (whole), hidden states of the ids truncated to max_length."""
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    ours = dump(hf_dump, model_dir, texts, os.path.join(work, label + ".ids.safetensors"), 0, ids_only=True)
    differ = []
    for i, text in enumerate(texts):
        want = tokenizer(text)["input_ids"]
        if ours[f"ids_{i}"].tolist() != want:
            differ.append(i)
            if len(differ) <= 3:
                print(f"{label}: ids differ for {text!r}\n  attnbench    {ours[f'ids_{i}'].tolist()}\n  transformers {want}")
    worst, states = None, 0
    if not ids_only:
        model = AutoModel.from_pretrained(model_dir).float().eval()  # fp32 whatever the checkpoint holds
        ours = dump(hf_dump, model_dir, texts, os.path.join(work, label + ".safetensors"), max_length)
        worst = 0.0
        for i, text in enumerate(texts):
            ids = tokenizer(text, truncation=True, max_length=max_length)["input_ids"]
            if not ids or ours[f"ids_{i}"].tolist() != ids:
                continue
            with torch.no_grad():
                hidden = model(torch.tensor([ids])).last_hidden_state[0]
            worst = max(worst, (hidden - ours[f"hidden_{i}"]).abs().max().item())
            states += 1
    ok = not differ and (worst is None or worst <= BOUND)
    return {"check": label, "texts": len(texts), "ids": "identical" if not differ else f"{len(differ)} differ",
            "states": states, "max_abs_diff": "" if worst is None else f"{worst:.2e}", "result": "ok" if ok else "FAIL"}


def full_size(family, work):
    """A randomly initialised base-size model of `family` beside the fixture's tokenizer; xlm-roberta-base's
    250002-token embedding is cut to the tokenizer's size (it would not change what is checked)."""
    vocab = len(AutoTokenizer.from_pretrained(os.path.join(FIXTURES, family))) if family == "xlm-roberta" else None
    return hf_checkpoint.write_random(family, os.path.join(work, family + "-base-random"), vocab)


def print_table(rows):
    columns = ["check", "texts", "ids", "states", "max_abs_diff", "result"]
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in columns}
    print("| " + " | ".join(c.ljust(widths[c]) for c in columns) + " |")
    print("|" + "|".join("-" * (widths[c] + 2) for c in columns) + "|")
    for r in rows:
        print("| " + " | ".join(str(r[c]).ljust(widths[c]) for c in columns) + " |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dump", required=True, help="tests/tools/hf_dump as built (build/tests/hf_dump)")
    parser.add_argument("--out", default=None, help="where checkpoints and dumps go (default: a temporary folder)")
    parser.add_argument("--random", type=int, default=2000, help="random strings per family (0: none)")
    parser.add_argument("--no-full-size", action="store_true", help="skip the base-size random models")
    parser.add_argument("--family", action="append", choices=FAMILIES, help="only these families")
    parser.add_argument("--model", action="append", default=[], help="another checkpoint directory to check")
    args = parser.parse_args()
    work = args.out or tempfile.mkdtemp()
    os.makedirs(work, exist_ok=True)
    hf_dump = os.path.abspath(args.dump)
    texts = json.load(open(os.path.join(FIXTURES, "texts.json"), encoding="utf-8"))
    corpus = open(os.path.join(ROOT, "data", "wiki_sample.xml"), encoding="utf-8").read()
    print(f"transformers {transformers.__version__}, torch {torch.__version__}; bound: ids identical, "
          f"last hidden state max abs diff <= {BOUND:g} (fp32, CPU)")
    rows = []
    for family in args.family or FAMILIES:
        first = len(rows)
        fixture = os.path.join(FIXTURES, family)
        rows.append(compare(f"{family} fixture", fixture, texts, hf_dump, work, 64))
        rows.append(compare(f"{family} fixture, sample corpus", fixture, [corpus], hf_dump, work, 0, ids_only=True))
        if args.random:
            rows.append(compare(f"{family} fixture, random strings", fixture, random_texts(args.random, seed=FAMILIES.index(family)),
                                hf_dump, work, 0, ids_only=True))
        if not args.no_full_size:
            rows.append(compare(f"{family} base size, random weights", full_size(family, work), texts, hf_dump, work,
                                1024 if family == "gpt2" else 512))
        print_table(rows[first:])  # progress, family by family
    for directory in args.model:
        label = os.path.basename(os.path.normpath(directory))
        rows.append(compare(label, directory, texts, hf_dump, work, 512))
        rows.append(compare(f"{label}, random strings", directory, random_texts(args.random or 200, seed=99), hf_dump, work, 0,
                            ids_only=True))
    print()
    print_table(rows)
    sys.exit(0 if all(r["result"] == "ok" for r in rows) else 1)


if __name__ == "__main__":
    main()
