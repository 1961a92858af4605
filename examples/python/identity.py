"""The smallest attnbench Python layer: it returns its input and keeps no state. Its step time is what
the bridge costs per call (C++ to Python and back, the tensor wrapped and unwrapped, the GIL), measured by
configs/python_bridge.yaml. Not causal attention at all, but it honours the contract.

    runner check-plugin python --set module=examples/python/identity.py --set class=Identity
"""


class Identity:
    def __init__(self, embed_dim, device, dtype, seed):
        self.description = "identity (Python): the bridge alone"

    def init_state(self, batch):
        return None

    def forward(self, x, state):
        return x, state

    def step(self, x_t, state):
        return x_t, state

    def state_bytes(self, state):
        return 0
