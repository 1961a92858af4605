"""Multi-scale retention (RetNet, Sun et al., 2023) as an attnbench Python layer: each head h forgets at
its own rate gamma_h = 1 - 2^(-5-h), with a constant-size state per head

    S_t = gamma S_{t-1} + k_t^T v_t        o_t = q_t S_t
    y_t = W_o (swish(W_g x_t) * GroupNorm_h(o_t))

forward uses the parallel form over a chunk, (Q K^T * D) V with D[t, s] = gamma^(t-s) for s <= t, plus
gamma^(t+1) q_t S_0 for what the state carries in; step uses the recurrence. Without xPos rotation.
The state is kept in float32 whatever the layer's dtype.

    runner check-plugin python --set module=examples/python/retention.py --set class=Retention
"""
import torch
import torch.nn.functional as F


class Retention:
    def __init__(self, embed_dim, device, dtype, seed, heads=4, eps=1e-6):
        if heads < 1 or embed_dim % heads:
            raise ValueError(f"heads {heads} must be >= 1 and divide embed_dim {embed_dim}")
        self.heads, self.head_dim, self.eps = heads, embed_dim // heads, eps
        self.device, self.dtype = device, dtype
        gen = torch.Generator().manual_seed(seed)
        bound = embed_dim ** -0.5

        def weight(rows):
            return (torch.rand(rows, embed_dim, generator=gen) * 2 - 1).mul_(bound).to(device, dtype)

        self.w_qkvg = weight(4 * embed_dim)  # query, key, value and gate projections, stacked
        self.w_out = weight(embed_dim)
        self.log_gamma = torch.log(1 - 2.0 ** (-5.0 - torch.arange(heads, dtype=torch.float64))).float().to(device)
        self.gamma = self.log_gamma.exp().view(1, -1, 1, 1)
        self.description = f"retention (Python), H={heads}, decays " + ", ".join(
            f"{g:.4f}" for g in self.gamma.flatten().tolist())

    def init_state(self, batch):
        return torch.zeros(batch, self.heads, self.head_dim, self.head_dim, device=self.device)

    def project(self, x):
        """q, k, v (float32, split into heads; k scaled by 1/sqrt(Dh)) and the gate, for (..., E)."""
        q, k, v, g = F.linear(x, self.w_qkvg).chunk(4, -1)
        return self.split(q), self.split(k) * self.head_dim ** -0.5, self.split(v), g

    def split(self, t):
        return t.float().unflatten(-1, (self.heads, self.head_dim))

    def output(self, o, g):
        """W_o (swish(g) * GroupNorm(o)): each head normalised on its own."""
        o = (o - o.mean(-1, keepdim=True)) * torch.rsqrt(o.var(-1, unbiased=False, keepdim=True) + self.eps)
        return F.linear(F.silu(g) * o.flatten(-2).to(g.dtype), self.w_out)

    def forward(self, x, state):
        length = x.shape[0]
        q, k, v, g = self.project(x)  # (L, B, H, Dh)
        t = torch.arange(length, device=x.device, dtype=torch.float32)
        gaps = t.unsqueeze(1) - t.unsqueeze(0)  # t - s
        decay = torch.exp(gaps * self.log_gamma.view(-1, 1, 1)).masked_fill(gaps < 0, 0)  # (H, L, L)
        scores = torch.einsum("tbhd,sbhd->bhts", q, k) * decay
        o = torch.einsum("bhts,sbhd->tbhd", scores, v)
        carried = torch.exp((t + 1).view(-1, 1) * self.log_gamma)  # gamma^(t+1): (L, H)
        o = o + torch.einsum("tbhd,bhde->tbhe", q, state) * carried.view(length, 1, self.heads, 1)
        # S_L = gamma^L S_0 + sum_s gamma^(L-1-s) k_s^T v_s
        weights = torch.exp((length - 1 - t).view(-1, 1) * self.log_gamma)  # (L, H)
        state = state * torch.exp(length * self.log_gamma).view(1, -1, 1, 1) + torch.einsum(
            "sbhd,sbhe,sh->bhde", k, v, weights)
        return self.output(o, g), state

    def step(self, x_t, state):
        q, k, v, g = self.project(x_t)  # (B, H, Dh)
        state.mul_(self.gamma).add_(k.unsqueeze(-1) * v.unsqueeze(-2))
        o = torch.einsum("bhd,bhde->bhe", q, state)
        return self.output(o, g), state

    def state_bytes(self, state):
        return state.numel() * state.element_size()
