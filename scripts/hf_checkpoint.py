#!/usr/bin/env python3
"""Writes a Hugging Face checkpoint directory the hf embedder reads (config.json, tokenizer.json and the
older tokenizer files, model.safetensors) for one of the models the reference's studies name:
bert-base-uncased, distilbert-base-uncased, roberta-base, xlm-roberta-base or gpt2.

By default the pretrained model and tokenizer come from the Hugging Face hub (transformers'
from_pretrained). With --random, nothing is fetched: the model has the named model's architecture and
size with random weights (seed 0) and the tokenizer is the small one of its family's test fixture
(tests/fixtures/hf/<family>), so token counts differ from the real tokenizer's but the model's cost per
token is the real one's. Needs transformers and torch.

usage: scripts/hf_checkpoint.py NAME DIR [--random]
e.g.   scripts/hf_checkpoint.py gpt2 models/gpt2 --random
"""
import argparse
import os
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
FIXTURES = os.path.join(ROOT, "tests", "fixtures", "hf")
FAMILY = {"bert-base-uncased": "bert", "distilbert-base-uncased": "distilbert", "roberta-base": "roberta",
          "xlm-roberta-base": "xlm-roberta", "gpt2": "gpt2"}


def base_config(family, vocab_size=None):
    """The transformers config of `family`'s base-size model (bert-base, distilbert-base, roberta-base,
    xlm-roberta-base, gpt2), optionally with another vocabulary size."""
    import transformers as t
    configs = {
        "bert": lambda: t.BertConfig(vocab_size=30522),
        "distilbert": lambda: t.DistilBertConfig(vocab_size=30522),
        "roberta": lambda: t.RobertaConfig(vocab_size=50265, max_position_embeddings=514, type_vocab_size=1,
                                           layer_norm_eps=1e-5, pad_token_id=1, bos_token_id=0, eos_token_id=2),
        "xlm-roberta": lambda: t.XLMRobertaConfig(vocab_size=250002, max_position_embeddings=514, type_vocab_size=1,
                                                  layer_norm_eps=1e-5, pad_token_id=1, bos_token_id=0, eos_token_id=2),
        "gpt2": lambda: t.GPT2Config(vocab_size=50257),
    }
    config = configs[family]()
    if vocab_size:
        config.vocab_size = vocab_size
    return config


def write_random(family, directory, vocab_size=None):
    """A randomly initialised base-size `family` model beside the family's fixture tokenizer."""
    import torch
    from transformers import AutoModel, AutoTokenizer
    torch.manual_seed(0)
    AutoModel.from_config(base_config(family, vocab_size)).save_pretrained(directory)  # safetensors by default
    AutoTokenizer.from_pretrained(os.path.join(FIXTURES, family)).save_pretrained(directory)
    return directory


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("name", choices=sorted(FAMILY))
    parser.add_argument("dir")
    parser.add_argument("--random", action="store_true", help="random weights and the fixture's tokenizer; fetches nothing")
    args = parser.parse_args()
    if args.random:
        write_random(FAMILY[args.name], args.dir)
        print(f"{args.dir}: {args.name}'s architecture with random weights, tokenizer of tests/fixtures/hf/{FAMILY[args.name]}")
        return
    from transformers import AutoModel, AutoTokenizer
    try:
        AutoModel.from_pretrained(args.name).save_pretrained(args.dir)
        AutoTokenizer.from_pretrained(args.name).save_pretrained(args.dir)
    except OSError as e:
        sys.exit(f"{args.name}: cannot fetch it ({e}); --random writes the same architecture with random weights")
    print(f"{args.dir}: pretrained {args.name}")


if __name__ == "__main__":
    main()
