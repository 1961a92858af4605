"""torch.nn.MultiheadAttention(E, heads) with a KV cache, as an attnbench Python layer: the module's own
parameters and initialisation (seeded), or its state_dict saved as .safetensors (`weights`, the file the
C++ `mha` plugin loads too: in_proj_weight, in_proj_bias, out_proj.weight, out_proj.bias). forward and
step project only the new tokens, append their keys and values to a preallocated cache that doubles when
full, and attend causally over it, as `mha` does in C++; the two are compared in BENCHMARKS.md.

    runner check-plugin python --set module=examples/python/mha.py --set class=MultiheadAttention \\
        --set 'args={heads: 4, weights: w.safetensors}'
"""
import json
import math
import struct

import torch
import torch.nn.functional as F

INITIAL_CAPACITY = 256
SAFETENSORS_DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}


def read_safetensors(path):
    """The tensors of a .safetensors file: an 8-byte little-endian header length, a JSON header of
    name -> {dtype, shape, data_offsets}, then the data."""
    with open(path, "rb") as f:
        (header_len,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(header_len))
        data = f.read()
    tensors = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        begin, end = entry["data_offsets"]
        flat = torch.frombuffer(bytearray(data[begin:end]), dtype=SAFETENSORS_DTYPES[entry["dtype"]])
        tensors[name] = flat.reshape(entry["shape"])
    return tensors


def attention(q, k, v, offset):
    """Causal scaled dot-product attention of queries at positions offset.. over keys 0..: q (B, H, Lq, Dh),
    k and v (B, H, Lk, Dh). torch 2's fused kernel where it exists, else the explicit softmax, as the
    C++ plugin chooses."""
    lq, lk = q.shape[2], k.shape[2]
    mask = None
    if lq > 1:  # a single query at the end sees every key anyway
        positions = torch.arange(lk, device=q.device)
        mask = positions.unsqueeze(0) <= (torch.arange(lq, device=q.device) + offset).unsqueeze(1)
    if hasattr(F, "scaled_dot_product_attention"):
        if mask is not None and offset == 0 and lq == lk:
            return F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    scores = torch.matmul(q, k.transpose(-2, -1)).mul_(1.0 / math.sqrt(q.shape[-1]))
    if mask is not None:
        scores.masked_fill_(mask.logical_not(), -math.inf)
    return torch.matmul(torch.softmax(scores, -1), v)


class MultiheadAttention:
    def __init__(self, embed_dim, device, dtype, seed, heads=4, weights=""):
        if heads < 1 or embed_dim % heads:
            raise ValueError(f"heads {heads} must be >= 1 and divide embed_dim {embed_dim}")
        self.embed_dim, self.heads, self.head_dim = embed_dim, heads, embed_dim // heads
        # Built outside the runner's inference mode, as a module's parameters normally are; seeded
        # without touching torch's global generator.
        with torch.inference_mode(False), torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            module = torch.nn.MultiheadAttention(embed_dim, heads)
            if weights:
                module.load_state_dict(read_safetensors(weights))
            self.module = module.requires_grad_(False).to(device, dtype).eval()
        self.description = f"torch.nn.MultiheadAttention (Python) E={embed_dim} H={heads}, KV cache"

    def init_state(self, batch):
        return self.cache(batch, INITIAL_CAPACITY, None)

    def cache(self, batch, capacity, old):
        """An empty (B, capacity, E) key and value cache, holding `old`'s tokens when given."""
        p = self.module.in_proj_weight
        state = {"k": p.new_empty(batch, capacity, self.embed_dim), "v": p.new_empty(batch, capacity, self.embed_dim),
                 "length": 0}
        if old is not None:
            n = old["length"]
            state["k"][:, :n] = old["k"][:, :n]
            state["v"][:, :n] = old["v"][:, :n]
            state["length"] = n
        return state

    def reserve(self, state, tokens):
        capacity = state["k"].shape[1]
        if tokens <= capacity:
            return state
        return self.cache(state["k"].shape[0], max(tokens, 2 * capacity), state)

    def heads_view(self, t, length):
        """(B, T, E) rows [0, length) as (B, H, length, Dh), without a copy."""
        return t[:, :length].view(t.shape[0], length, self.heads, self.head_dim).transpose(1, 2)

    def forward(self, x, state):
        length, batch, width = x.shape
        m = self.module
        q, k, v = F.linear(x, m.in_proj_weight, m.in_proj_bias).chunk(3, -1)  # (L, B, E) each
        start = state["length"]
        end = start + length
        state = self.reserve(state, end)
        state["k"][:, start:end] = k.transpose(0, 1)
        state["v"][:, start:end] = v.transpose(0, 1)
        state["length"] = end
        query = q.reshape(length, batch, self.heads, self.head_dim).permute(1, 2, 0, 3)
        attended = attention(query, self.heads_view(state["k"], end), self.heads_view(state["v"], end), start)
        merged = attended.permute(2, 0, 1, 3).reshape(length, batch, width)
        return F.linear(merged, m.out_proj.weight, m.out_proj.bias), state

    def step(self, x_t, state):
        y, state = self.forward(x_t.unsqueeze(0), state)
        return y.squeeze(0), state

    def state_bytes(self, state):
        k = state["k"]
        return 2 * k.shape[0] * state["length"] * self.embed_dim * k.element_size()
