"""Writes weights for the example plugin (qkv.weight (3E, E), out.weight (E, E), float32, seeded) as a
.safetensors file, with nothing but the standard library: usage linear_weights.py OUT [E]."""
import json
import random
import struct
import sys

out, e = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 32
rng = random.Random(7)
tensors = {"qkv.weight": [3 * e, e], "out.weight": [e, e]}
header, data = {}, b""
for name, shape in tensors.items():
    n = shape[0] * shape[1]
    header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [len(data), len(data) + 4 * n]}
    data += struct.pack(f"<{n}f", *(rng.uniform(-0.2, 0.2) for _ in range(n)))
blob = json.dumps(header).encode()
with open(out, "wb") as f:
    f.write(struct.pack("<Q", len(blob)) + blob + data)
