#!/usr/bin/env python3
"""Parity of attnbench's BERT embedder with Hugging Face transformers (run on the GPU machine, which has
transformers; see scripts/gpu_check.sh). Checks, for a checkpoint directory:
  - token ids of tests/tools/parity_texts.txt equal BertTokenizerFast's (same vocab.txt, uncased);
  - the last hidden state equals BertModel's, max abs difference <= 1e-4 in fp32.
Runs it for the given checkpoint (all-MiniLM-L6-v2) and for a randomly initialised bert-base-sized
BertModel saved with save_pretrained. Prints one line per check and exits non-zero on a failure.

usage: scripts/hf_parity.py --bert-dump build-gpu/tests/bert_dump --model models/minilm-f16 [--out DIR]
"""
import argparse
import os
import subprocess
import sys
import tempfile

import torch
from safetensors.torch import load_file
from transformers import BertConfig, BertModel, BertTokenizerFast

TEXTS = os.path.join(os.path.dirname(__file__), "..", "tests", "tools", "parity_texts.txt")


def check(model_dir, bert_dump, out_dir, label):
    dump = os.path.join(out_dir, f"{label}.safetensors")
    subprocess.run([bert_dump, model_dir, TEXTS, dump], check=True)
    ours = load_file(dump)
    # from_pretrained reads vocab.txt and tokenizer_config.json (do_lower_case); transformers 5 ignores a
    # bare vocab_file argument and would build an empty vocabulary.
    tokenizer = BertTokenizerFast.from_pretrained(model_dir)
    model = BertModel.from_pretrained(model_dir, torch_dtype=torch.float32).eval()
    ok = True
    worst = 0.0
    texts = open(TEXTS, encoding="utf-8").read().split("\n")[:-1]
    for i, text in enumerate(texts):
        expected = tokenizer(text, truncation=True, max_length=512)["input_ids"]
        got = ours[f"ids_{i}"].tolist()
        if got != expected:
            ok = False
            print(f"{label}: ids differ for line {i} {text!r}:\n  ours {got}\n  hf   {expected}")
            continue
        with torch.no_grad():
            hidden = model(torch.tensor([expected])).last_hidden_state[0]
        worst = max(worst, (hidden - ours[f"hidden_{i}"]).abs().max().item())
    print(f"{label}: {len(texts)} texts, token ids {'identical' if ok else 'DIFFER'}, "
          f"last hidden state max abs diff {worst:.3e} ({'ok' if worst <= 1e-4 else 'FAIL'}, bound 1e-4)")
    return ok and worst <= 1e-4


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bert-dump", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--out", default=tempfile.mkdtemp())
    args = parser.parse_args()
    good = check(args.model, args.bert_dump, args.out, "all-MiniLM-L6-v2")
    # bert-base-uncased's shape with random weights (no hub here), the MiniLM vocabulary (the same 30522).
    torch.manual_seed(0)
    base_dir = os.path.join(args.out, "bert-base-random")
    BertModel(BertConfig()).save_pretrained(base_dir, safe_serialization=True)
    for name in ("vocab.txt", "tokenizer_config.json", "special_tokens_map.json"):
        with open(os.path.join(args.model, name), "rb") as src, open(os.path.join(base_dir, name), "wb") as dst:
            dst.write(src.read())
    good &= check(base_dir, args.bert_dump, args.out, "bert-base (random init)")
    sys.exit(0 if good else 1)


if __name__ == "__main__":
    main()
