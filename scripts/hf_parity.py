#!/usr/bin/env python3
"""Parity of attnbench's Hugging Face embedder with Hugging Face's own tokenizers and models, for every
family it reads (bert, distilbert, roberta, xlm-roberta, gpt2). attnbench's side is tests/tools/hf_dump
(CPU, fp32).

Token ids: the reference is the checkpoint's tokenizer.json run by the tokenizers library
(tokenizers.Tokenizer.from_file; AutoTokenizer where a checkpoint has no tokenizer.json). Where
transformers is installed, AutoTokenizer's ids are compared too, in their own column: since
transformers 5 a model's tokenizer class (XLMRobertaTokenizer, BertTokenizer, ...) rebuilds the
normalizer and pre-tokenizer from its own code instead of taking them from tokenizer.json, so
AutoTokenizer may disagree with the checkpoint's file. Such a disagreement is reported with the parts
that were rebuilt and fails nothing; one where AutoTokenizer runs the file's own pipeline fails the check.
The row "as transformers saves it" writes the fixture's tokenizer back with save_pretrained, so that
tokenizer.json holds transformers' pipeline, and there AutoTokenizer's ids bound the check too.
Hidden states (needs torch): AutoModel's last hidden state of the reference ids truncated as
truncation=True does, bound 1e-4.

For each family:
  - fixture: the checkpoint under tests/fixtures/hf/<family>: ids of tests/fixtures/hf/texts.json and
    of the raw data/wiki_sample.xml, and the last hidden state (ids truncated to 64);
  - random strings: --random seeded strings drawn from hard pieces (whitespace kinds, combining marks,
    CJK, emoji sequences, zero-width and control characters, special-token literals, contractions);
  - as transformers saves it (with transformers): the texts and the random strings, ids only;
  - full size (with torch): a randomly initialised model of the family's base size saved with
    save_pretrained beside the fixture's tokenizer, last hidden state of the texts truncated to 512
    tokens (gpt2: 1024);
and each --model DIR given (any checkpoint directory, e.g. a real pretrained one) as a fixture. Prints
a table; exits 1 when a check fails. --ids-only needs only the tokenizers package (and uses
transformers when it is installed): no torch, no hidden states, no base-size models.

usage: scripts/hf_parity.py --dump build/tests/hf_dump [--out DIR] [--random 2000] [--no-full-size]
                            [--ids-only] [--family gpt2 ...] [--model DIR ...]
"""
import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile

import tokenizers
from safetensors.numpy import load_file

try:
    import transformers
    from transformers import AutoTokenizer
except ImportError:  # the ids against tokenizer.json need only the tokenizers library
    transformers = None

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
FIXTURES = os.path.join(ROOT, "tests", "fixtures", "hf")
FAMILIES = ["bert", "distilbert", "roberta", "xlm-roberta", "gpt2"]
BOUND = 1e-4
PIPELINE = ["normalizer", "pre_tokenizer", "model", "post_processor", "added_tokens"]
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


class Reference:
    """The ids Hugging Face gives for a checkpoint: its tokenizer.json run by the tokenizers library, and
    AutoTokenizer's when transformers is installed."""

    def __init__(self, model_dir):
        path = os.path.join(model_dir, "tokenizer.json")
        self.file = tokenizers.Tokenizer.from_file(path) if os.path.exists(path) else None
        self.auto = AutoTokenizer.from_pretrained(model_dir) if transformers else None
        if self.file is None and self.auto is None:
            sys.exit(f"{model_dir}: no tokenizer.json, and transformers is not installed to read the older files")

    def ids(self, text, max_length=0):
        if self.file is None:
            return self.auto(text, truncation=max_length > 0, max_length=max_length or None)["input_ids"]
        if max_length:
            self.file.enable_truncation(max_length)
        ids = self.file.encode(text).ids
        self.file.no_truncation()
        return ids

    def rebuilt(self):
        """The parts of the pipeline AutoTokenizer runs that differ from tokenizer.json's."""
        if self.file is None or self.auto is None:
            return []
        # Scores rounded: the Rust JSON reader may parse a Unigram score one unit in the last place off.
        def parse(text):
            return json.loads(text, parse_float=lambda s: round(float(s), 12))
        ours, theirs = parse(self.file.to_str()), parse(self.auto.backend_tokenizer.to_str())
        return [part for part in PIPELINE if ours.get(part) != theirs.get(part)]


def compare(label, model_dir, texts, hf_dump, work, max_length, ids_only=False, auto_bound=False):
    """One row of the table: ids of every text (whole), hidden states of the ids truncated to max_length.
    AutoTokenizer's ids bound the check where it runs the file's pipeline, or always with auto_bound."""
    reference = Reference(model_dir)
    ours = dump(hf_dump, model_dir, texts, os.path.join(work, label + ".ids.safetensors"), 0, ids_only=True)
    differ, auto_differ = [], []
    for i, text in enumerate(texts):
        got, want = ours[f"ids_{i}"].tolist(), reference.ids(text)
        auto = reference.auto(text)["input_ids"] if reference.auto else want
        if got != want:
            differ.append(i)
            if len(differ) <= 3:
                print(f"{label}: ids differ for {text!r}\n  attnbench          {got}\n  tokenizer.json     {want}")
        if got != auto:
            auto_differ.append(i)
            if len(auto_differ) <= 3:
                print(f"{label}: AutoTokenizer differs for {text!r}\n  attnbench          {got}\n  AutoTokenizer      {auto}")
    rebuilt = reference.rebuilt()
    if reference.auto is None:
        auto_column = "n/a"
    elif not auto_differ:
        auto_column = "identical"
    else:
        auto_column = f"{len(auto_differ)} differ" + (f" (rebuilt: {', '.join(rebuilt)})" if rebuilt else "")
    worst, states = None, ""
    if not ids_only:
        worst, states = hidden_states(label, model_dir, texts, reference, hf_dump, work, max_length)
    ok = not differ and (not auto_differ or (bool(rebuilt) and not auto_bound)) and (worst is None or worst <= BOUND)
    return {"check": label, "texts": len(texts), "ids": "identical" if not differ else f"{len(differ)} differ",
            "AutoTokenizer": auto_column, "states": states, "max_abs_diff": "" if worst is None else f"{worst:.2e}",
            "result": "ok" if ok else "FAIL"}


def hidden_states(label, model_dir, texts, reference, hf_dump, work, max_length):
    """The largest difference of the last hidden state, and how many texts it covers."""
    import torch
    from transformers import AutoModel
    model = AutoModel.from_pretrained(model_dir).float().eval()  # fp32 whatever the checkpoint holds
    ours = dump(hf_dump, model_dir, texts, os.path.join(work, label + ".safetensors"), max_length)
    worst, states = 0.0, 0
    for i, text in enumerate(texts):
        ids = reference.ids(text, max_length)
        if not ids or ours[f"ids_{i}"].tolist() != ids:
            continue
        with torch.no_grad():
            hidden = model(torch.tensor([ids])).last_hidden_state[0].numpy()
        worst = max(worst, float(abs(hidden - ours[f"hidden_{i}"]).max()))
        states += 1
    return worst, states


def resaved(family, work):
    """The fixture with its tokenizer written back by the installed transformers (tokenizer.json then
    holds the pipeline transformers runs)."""
    directory = os.path.join(work, family + "-resaved")
    shutil.rmtree(directory, ignore_errors=True)
    AutoTokenizer.from_pretrained(os.path.join(FIXTURES, family)).save_pretrained(directory)
    shutil.copy(os.path.join(FIXTURES, family, "config.json"), directory)  # hf_dump reads the model_type
    return directory


def full_size(family, work):
    """A randomly initialised base-size model of `family` beside the fixture's tokenizer; xlm-roberta-base's
    250002-token embedding is cut to the tokenizer's size (it would not change what is checked)."""
    import hf_checkpoint  # beside this script
    vocab = len(AutoTokenizer.from_pretrained(os.path.join(FIXTURES, family))) if family == "xlm-roberta" else None
    return hf_checkpoint.write_random(family, os.path.join(work, family + "-base-random"), vocab)


def print_table(rows):
    columns = ["check", "texts", "ids", "AutoTokenizer", "states", "max_abs_diff", "result"]
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in columns}
    print("| " + " | ".join(c.ljust(widths[c]) for c in columns) + " |")
    print("|" + "|".join("-" * (widths[c] + 2) for c in columns) + "|")
    for r in rows:
        print("| " + " | ".join(str(r[c]).ljust(widths[c]) for c in columns) + " |")


def versions():
    line = f"tokenizers {tokenizers.__version__}, transformers {transformers.__version__ if transformers else 'not installed'}"
    try:
        import torch
        line += f", torch {torch.__version__}"
    except ImportError:
        line += ", torch not installed"
    return line


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dump", required=True, help="tests/tools/hf_dump as built (build/tests/hf_dump)")
    parser.add_argument("--out", default=None, help="where checkpoints and dumps go (default: a temporary folder)")
    parser.add_argument("--random", type=int, default=2000, help="random strings per family (0: none)")
    parser.add_argument("--no-full-size", action="store_true", help="skip the base-size random models")
    parser.add_argument("--ids-only", action="store_true", help="token ids only: no torch, no hidden states")
    parser.add_argument("--family", action="append", choices=FAMILIES, help="only these families")
    parser.add_argument("--model", action="append", default=[], help="another checkpoint directory to check")
    args = parser.parse_args()
    if not args.ids_only and transformers is None:
        sys.exit("hidden states need transformers and torch; --ids-only checks the ids with the tokenizers library alone")
    work = args.out or tempfile.mkdtemp()
    os.makedirs(work, exist_ok=True)
    hf_dump = os.path.abspath(args.dump)
    texts = json.load(open(os.path.join(FIXTURES, "texts.json"), encoding="utf-8"))
    corpus = open(os.path.join(ROOT, "data", "wiki_sample.xml"), encoding="utf-8").read()
    print(f"{versions()}; bound: ids identical to tokenizer.json's, last hidden state max abs diff <= {BOUND:g} (fp32, CPU)")
    rows = []
    for family in args.family or FAMILIES:
        first = len(rows)
        fixture = os.path.join(FIXTURES, family)
        strings = random_texts(args.random, seed=FAMILIES.index(family)) if args.random else []
        rows.append(compare(f"{family} fixture", fixture, texts, hf_dump, work, 64, ids_only=args.ids_only))
        rows.append(compare(f"{family} fixture, sample corpus", fixture, [corpus], hf_dump, work, 0, ids_only=True))
        if strings:
            rows.append(compare(f"{family} fixture, random strings", fixture, strings, hf_dump, work, 0, ids_only=True))
        if transformers:
            saved = resaved(family, work)
            rows.append(compare(f"{family} as transformers saves it", saved, texts + strings, hf_dump, work, 0, ids_only=True,
                                auto_bound=True))
        if not args.no_full_size and not args.ids_only:
            rows.append(compare(f"{family} base size, random weights", full_size(family, work), texts, hf_dump, work,
                                1024 if family == "gpt2" else 512))
        print_table(rows[first:])  # progress, family by family
    for directory in args.model:
        label = os.path.basename(os.path.normpath(directory))
        rows.append(compare(label, directory, texts, hf_dump, work, 512, ids_only=args.ids_only))
        rows.append(compare(f"{label}, random strings", directory, random_texts(args.random or 200, seed=99), hf_dump, work, 0,
                            ids_only=True))
    print()
    print_table(rows)
    sys.exit(0 if all(r["result"] == "ok" for r in rows) else 1)


if __name__ == "__main__":
    main()
