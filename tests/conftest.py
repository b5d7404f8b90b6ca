"""Shared test settings: float64 where exactness is checked, few hypothesis examples (2 CPU cores)."""

import os

import torch
from hypothesis import settings

settings.register_profile("ci", max_examples=8, deadline=None, derandomize=True, print_blob=True)
settings.register_profile("thorough", max_examples=100, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
# Tests use tiny tensors, where a second thread costs more in synchronisation than it gains.
torch.set_num_threads(1)
