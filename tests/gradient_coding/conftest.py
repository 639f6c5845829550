"""Shared settings of the gradient-coding tests."""

import torch
from threadpoolctl import threadpool_limits

# The CI machine has 2 cores shared by several jobs; torch's intra-op threads and OpenBLAS's
# threads then fight each other (a 30 ms step becomes 1.5 s, a 0.3 ms matmul 20 ms). One thread
# keeps these tests fast and deterministic.
torch.set_num_threads(1)
threadpool_limits(1)
