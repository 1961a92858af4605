"""Causal linear attention (Katharopoulos et al., 2020) as an attnbench Python layer: a constant-size
state per head, the running sums

    S_t = S_{t-1} + phi(k_t) v_t^T        z_t = z_{t-1} + phi(k_t)        phi(x) = elu(x) + 1
    y_t = W_o [phi(q_t)^T S_t / phi(q_t)^T z_t]

forward computes a whole chunk at once (masked phi(Q) phi(K)^T plus what the state carries in), step one
token with the recurrence. The sums are kept in float32 whatever the layer's dtype.

    runner check-plugin python --set module=examples/python/linear_attention.py --set class=LinearAttention
"""
import torch
import torch.nn.functional as F


def phi(x):
    return F.elu(x) + 1


class LinearAttention:
    def __init__(self, embed_dim, device, dtype, seed, heads=4):
        if heads < 1 or embed_dim % heads:
            raise ValueError(f"heads {heads} must be >= 1 and divide embed_dim {embed_dim}")
        self.heads, self.head_dim = heads, embed_dim // heads
        self.device, self.dtype = device, dtype
        gen = torch.Generator().manual_seed(seed)
        bound = embed_dim ** -0.5
        self.w_qkv = (torch.rand(3 * embed_dim, embed_dim, generator=gen) * 2 - 1).mul_(bound).to(device, dtype)
        self.w_out = (torch.rand(embed_dim, embed_dim, generator=gen) * 2 - 1).mul_(bound).to(device, dtype)
        self.description = f"causal linear attention (Python), H={heads}"

    def init_state(self, batch):
        s = torch.zeros(batch, self.heads, self.head_dim, self.head_dim, device=self.device)
        z = torch.zeros(batch, self.heads, self.head_dim, device=self.device)
        return s, z

    def forward(self, x, state):
        s, z = state
        length, batch, width = x.shape
        q, k, v = F.linear(x, self.w_qkv).float().view(length, batch, 3, self.heads, self.head_dim).unbind(2)
        q, k = phi(q), phi(k)
        scores = torch.einsum("tbhd,sbhd->bhts", q, k).tril()  # token t sees tokens s <= t of this chunk
        numerator = torch.einsum("bhts,sbhd->tbhd", scores, v) + torch.einsum("tbhd,bhde->tbhe", q, s)
        denominator = scores.sum(-1).permute(2, 0, 1) + torch.einsum("tbhd,bhd->tbh", q, z)
        y = (numerator / denominator.unsqueeze(-1)).reshape(length, batch, width).to(x.dtype)
        s = s + torch.einsum("sbhd,sbhe->bhde", k, v)
        z = z + k.sum(0)
        return F.linear(y, self.w_out), (s, z)

    def step(self, x_t, state):
        s, z = state
        batch, width = x_t.shape
        q, k, v = F.linear(x_t, self.w_qkv).float().view(batch, 3, self.heads, self.head_dim).unbind(1)
        q, k = phi(q), phi(k)
        s.add_(k.unsqueeze(-1) * v.unsqueeze(-2))  # in place: the state never reallocates
        z.add_(k)
        y = torch.einsum("bhd,bhde->bhe", q, s) / (q * z).sum(-1, keepdim=True)
        return F.linear(y.reshape(batch, width).to(x_t.dtype), self.w_out), state

    def state_bytes(self, state):
        return sum(t.numel() * t.element_size() for t in state)
