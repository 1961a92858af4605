"""A small selective state-space layer (the S6 scan of Mamba, Gu and Dao, 2023, without its short
convolution) as an attnbench Python layer. Each of the D = expand * E channels carries N states; the step
size and the input and output maps depend on the token:

    u_t, z_t = W_in x_t                     (u through SiLU)
    dt_t = softplus(W_dt W_x u_t + b_dt)     B_t, C_t = W_x u_t       (input-dependent: "selective")
    h_t = exp(dt_t A) * h_{t-1} + (dt_t u_t) B_t^T                     A = -exp(A_log), diagonal
    y_t = W_out ((h_t C_t + D_skip u_t) * silu(z_t))

The state h is (B, D, N), constant in the sequence length, kept in float32. forward scans the chunk token
by token (a Python loop: fine for a reference, not for speed), step does one token of the same scan.

    runner check-plugin python --set module=examples/python/selective_ssm.py --set class=SelectiveSSM
"""
import math

import torch
import torch.nn.functional as F


class SelectiveSSM:
    def __init__(self, embed_dim, device, dtype, seed, state_size=8, expand=2):
        if state_size < 1 or expand < 1:
            raise ValueError(f"state_size {state_size} and expand {expand} must be >= 1")
        self.channels, self.state_size = expand * embed_dim, state_size
        self.dt_rank = math.ceil(embed_dim / 16)
        self.device, self.dtype = device, dtype
        gen = torch.Generator().manual_seed(seed)

        def uniform(*shape, bound):
            return (torch.rand(*shape, generator=gen) * 2 - 1).mul_(bound)

        d, n, r = self.channels, state_size, self.dt_rank
        self.w_in = uniform(2 * d, embed_dim, bound=embed_dim ** -0.5).to(device, dtype)
        self.w_x = uniform(r + 2 * n, d, bound=d ** -0.5).to(device, dtype)
        self.w_dt = uniform(d, r, bound=r ** -0.5).to(device, dtype)
        # Step sizes between 1e-3 and 1e-1 at the start, as Mamba initialises them (inverse softplus).
        dt = torch.exp(torch.rand(d, generator=gen) * (math.log(0.1) - math.log(1e-3)) + math.log(1e-3))
        self.b_dt = (dt + torch.log(-torch.expm1(-dt))).to(device)
        self.a = -torch.arange(1, n + 1, dtype=torch.float32).repeat(d, 1).to(device)  # A = -exp(log(1..N))
        self.d_skip = torch.ones(d, device=device)
        self.w_out = uniform(embed_dim, d, bound=d ** -0.5).to(device, dtype)
        self.description = f"selective SSM (Python), D={d}, N={n}"

    def init_state(self, batch):
        return torch.zeros(batch, self.channels, self.state_size, device=self.device)

    def inputs(self, x):
        """For tokens (..., E): the decay exp(dt A) and the input (dt u) B of the scan, each (..., D, N),
        C (..., N), u (..., D) in float32, and the gate (..., D)."""
        u, z = F.linear(x, self.w_in).chunk(2, -1)
        u = F.silu(u)
        low, b, c = F.linear(u, self.w_x).float().split([self.dt_rank, self.state_size, self.state_size], -1)
        dt = F.softplus(F.linear(low.to(x.dtype), self.w_dt).float() + self.b_dt)
        u = u.float()
        return torch.exp(dt.unsqueeze(-1) * self.a), (dt * u).unsqueeze(-1) * b.unsqueeze(-2), c, u, z

    def output(self, h, c, u, z):
        y = (h @ c.unsqueeze(-1)).squeeze(-1) + self.d_skip * u
        return F.linear(y.to(z.dtype) * F.silu(z), self.w_out)

    def forward(self, x, state):
        decay, drive, c, u, z = self.inputs(x)  # (L, B, ...)
        hs = []
        h = state
        for t in range(x.shape[0]):
            h = decay[t] * h + drive[t]
            hs.append(h)
        return self.output(torch.stack(hs), c, u, z), h

    def step(self, x_t, state):
        decay, drive, c, u, z = self.inputs(x_t)
        state.mul_(decay).add_(drive)
        return self.output(state, c, u, z), state

    def state_bytes(self, state):
        return state.numel() * state.element_size()
