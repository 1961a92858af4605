#!/usr/bin/env python3
"""Writes the Hugging Face fixtures under tests/fixtures/hf/: for each model family attnbench reads
(bert, distilbert, roberta, xlm-roberta, gpt2) a tiny randomly initialised checkpoint made by
transformers (config.json, tokenizer files, model.safetensors), its tokenizer trained on
data/wiki_sample.xml and a few multilingual lines (so the hard texts meet unknown characters), and
expected.safetensors: for every string of tests/fixtures/hf/texts.json the ids AutoTokenizer gives
(ids_<i>, whole) and AutoModel's last hidden state of the ids truncated to MAX_LENGTH (hidden_<i>).
tests/unit/test_hf.cpp compares attnbench with them; scripts/hf_parity.py compares them (and larger
models) with the transformers installed where it runs.

The committed fixtures were made with transformers 4.44.2, tokenizers 0.19.1, sentencepiece 0.2.x and
torch 1.13.1 (Debian's python3-torch) on the CPU:

    /usr/bin/python3 -m venv --system-site-packages /tmp/hf-env
    /tmp/hf-env/bin/pip install transformers==4.44.2 sentencepiece protobuf safetensors
    /tmp/hf-env/bin/python scripts/make_hf_fixtures.py

Keep those versions: tokenizers 0.23.3 (transformers 5.17.0's) gives the same ids for these files, but
transformers 5 would save the xlm-roberta tokenizer with its own normalizer and pre-tokenizer instead of
the converted SentencePiece pipeline (docs/embedders.md). Weights come from fixed seeds and the BPE and
Unigram vocabularies come out the same each run; the
WordPiece trainer breaks ties between equally frequent pieces differently from run to run, so
regenerated bert and distilbert fixtures hold another (equally valid) vocabulary. Each family's folder
is replaced whole, tokenizer and expected values together.
"""
import json
import os
import re
import shutil
import sys
import tempfile

import safetensors.torch
import sentencepiece
import tokenizers
import torch
import transformers
from tokenizers import BertWordPieceTokenizer, ByteLevelBPETokenizer
from transformers import AutoModel, AutoTokenizer

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
FIXTURES = os.path.join(ROOT, "tests", "fixtures", "hf")
TEXTS = os.path.join(FIXTURES, "texts.json")
CORPUS = os.path.join(ROOT, "data", "wiki_sample.xml")
MAX_LENGTH = 64  # small, with hidden size 8, to keep the fixtures a few hundred KB in all
VOCAB = 400
# A few lines beyond the English sample, so that the vocabularies hold some accented, Greek and CJK
# pieces and the hard texts exercise both known and unknown characters.
EXTRA = [
    "Café résumé naïve façade Zürich über straße élève.",
    "Ελληνικά γράμματα και λέξεις.",
    "中文字符和日本語のテキスト。",
    "don't you're we'll it's they've",
] * 20
# SentencePiece normalisation rules (source code points, tab, replacement code points) compiled into the
# Unigram tokenizer's precompiled_charsmap: a small stand-in for nmt_nfkc that covers what the
# Precompiled normalizer does (one-to-one, one-to-many, many-to-one, deletion, whitespace).
SPM_RULES = """\
0009\t0020
000A\t0020
00A0\t0020
3000\t0020
FB01\t0066 0069
0065 0301\t00E9
0061 0308\t00E4
FF21\t0041
FF22\t0042
FF23\t0043
FF11\t0031
FF12\t0032
200B\t
FEFF\t
2163\t0049 0056
"""


def corpus_lines():
    text = open(CORPUS, encoding="utf-8").read()
    lines = [line for line in re.sub(r"<[^>]+>", " ", text).splitlines() if line.strip()]
    return lines + EXTRA


def sharpen(model):
    """Replaces transformers' small initialisation (std 0.02) with larger weights, so that attention and
    every nonlinearity matter to the output and a wrong mask or position cannot hide under 1e-4."""
    torch.manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            norm = any(k in name for k in ("LayerNorm", "layer_norm", "ln_"))
            if norm and name.endswith("weight"):
                p.copy_(1.0 + 0.2 * torch.randn_like(p))
            elif norm or name.endswith("bias"):
                p.copy_(0.1 * torch.randn_like(p))
            elif "embeddings" in name or name.startswith(("wte", "wpe")):
                p.copy_(torch.randn_like(p))
            else:
                p.copy_(0.3 * torch.randn_like(p))
    return model


def wordpiece_tokenizer(work, lower):
    wp = BertWordPieceTokenizer(lowercase=lower)
    wp.train_from_iterator(corpus_lines(), vocab_size=VOCAB, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
    wp.save_model(work)
    return dict(vocab_file=os.path.join(work, "vocab.txt"), do_lower_case=lower)


def byte_level_tokenizer(work, specials):
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(corpus_lines(), vocab_size=VOCAB, special_tokens=specials)
    bpe.save_model(work)
    return dict(vocab_file=os.path.join(work, "vocab.json"), merges_file=os.path.join(work, "merges.txt"))


def unigram_tokenizer(work):
    rules = os.path.join(work, "rules.tsv")
    with open(rules, "w", encoding="utf-8") as f:
        f.write(SPM_RULES)
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus_lines()), model_prefix=os.path.join(work, "spm"), vocab_size=VOCAB,
        model_type="unigram", normalization_rule_tsv=rules, character_coverage=1.0, seed_sentencepiece_size=5000,
        num_threads=1, minloglevel=2)
    return dict(vocab_file=os.path.join(work, "spm.model"))


def families():
    """name: (tokenizer class, tokenizer files maker, model config)."""
    t = transformers
    small = dict(hidden_size=8, num_hidden_layers=2, num_attention_heads=2, intermediate_size=16)
    return {
        "bert": (t.BertTokenizerFast, lambda w: wordpiece_tokenizer(w, True),
                 lambda v: t.BertConfig(vocab_size=v, max_position_embeddings=MAX_LENGTH, **small)),
        "distilbert": (t.DistilBertTokenizerFast, lambda w: wordpiece_tokenizer(w, False),
                       lambda v: t.DistilBertConfig(vocab_size=v, dim=8, n_layers=2, n_heads=2, hidden_dim=16,
                                                    max_position_embeddings=MAX_LENGTH)),
        "roberta": (t.RobertaTokenizerFast, lambda w: byte_level_tokenizer(w, ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]),
                    lambda v: t.RobertaConfig(vocab_size=v, max_position_embeddings=MAX_LENGTH + 2, type_vocab_size=1,
                                              layer_norm_eps=1e-5, pad_token_id=1, **small)),
        "xlm-roberta": (t.XLMRobertaTokenizerFast, unigram_tokenizer,
                        lambda v: t.XLMRobertaConfig(vocab_size=v, max_position_embeddings=MAX_LENGTH + 2, type_vocab_size=1,
                                                     layer_norm_eps=1e-5, pad_token_id=1, **small)),
        "gpt2": (t.GPT2TokenizerFast, lambda w: byte_level_tokenizer(w, ["<|endoftext|>"]),
                 lambda v: t.GPT2Config(vocab_size=v, n_embd=8, n_layer=2, n_head=2, n_positions=MAX_LENGTH)),
    }


def expected(directory, texts):
    """ids and last hidden states as AutoTokenizer and AutoModel give them for `directory`."""
    tokenizer = AutoTokenizer.from_pretrained(directory)
    model = AutoModel.from_pretrained(directory).eval()
    out = {}
    for i, text in enumerate(texts):
        out[f"ids_{i}"] = torch.tensor(tokenizer(text)["input_ids"], dtype=torch.int32)
        ids = tokenizer(text, truncation=True, max_length=MAX_LENGTH)["input_ids"]
        if ids:
            with torch.no_grad():
                out[f"hidden_{i}"] = model(torch.tensor([ids])).last_hidden_state[0].contiguous()
    return out


def make(name, tokenizer_class, tokenizer_files, config, texts):
    work = tempfile.mkdtemp()
    try:
        tokenizer = tokenizer_class(**tokenizer_files(work))
        target = os.path.join(work, "out")
        tokenizer.save_pretrained(target)
        torch.manual_seed(0)
        model = sharpen(AutoModel.from_config(config(len(tokenizer))))
        model.save_pretrained(target)
        # The slow tokenizer's SentencePiece model: tokenizer.json holds all of it.
        for extra in ("sentencepiece.bpe.model",):
            if os.path.exists(os.path.join(target, extra)):
                os.remove(os.path.join(target, extra))
        versions = {"transformers": transformers.__version__, "tokenizers": tokenizers.__version__,
                    "torch": torch.__version__, "max_length": str(MAX_LENGTH)}
        safetensors.torch.save_file(expected(target, texts), os.path.join(target, "expected.safetensors"), metadata=versions)
        final = os.path.join(FIXTURES, name)
        staged = final + ".new"
        shutil.rmtree(staged, ignore_errors=True)
        shutil.copytree(target, staged)
        for f in os.listdir(staged):
            os.chmod(os.path.join(staged, f), 0o644)
        shutil.rmtree(final, ignore_errors=True)
        os.rename(staged, final)
        size = sum(os.path.getsize(os.path.join(final, f)) for f in os.listdir(final))
        print(f"{name}: {len(tokenizer)} tokens, {size // 1024} KiB in {os.path.relpath(final, ROOT)}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main():
    texts = json.load(open(TEXTS, encoding="utf-8"))
    chosen = sys.argv[1:] or list(families())
    for name in chosen:
        make(name, *families()[name], texts)


if __name__ == "__main__":
    main()
