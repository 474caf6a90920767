"""Shared test setup: one CPU thread (the machine is shared; see performance notes)."""

import torch

torch.set_num_threads(1)
