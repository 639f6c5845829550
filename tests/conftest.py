"""Test-session settings shared by every test package."""

import os

import torch

# CI has 2 cores and pytest-xdist runs one worker per core: one torch thread per worker avoids
# oversubscription (a tiny step was ~50x slower with 2 threads per worker on a loaded machine).
torch.set_num_threads(1)
os.environ.setdefault("MPLBACKEND", "Agg")
