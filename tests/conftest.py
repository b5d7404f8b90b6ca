"""Shared test settings: one thread, and hypothesis examples sized for a 2-core CI machine."""

import os

import torch
from hypothesis import settings

# 50 examples per property (hypothesis' default is 100). CPU time of tests/bijectors/test_properties.py,
# measured with one thread including ~3 s of imports: 6 s at 8 examples, 11 s at 50, 20 s at 100;
# test_chain_and_inverse (two checks per example) is about 40% of it. derandomize: the same examples on
# every run, so CI is reproducible; HYPOTHESIS_PROFILE=thorough explores new ones.
settings.register_profile("ci", max_examples=50, deadline=None, derandomize=True, print_blob=True)
settings.register_profile("thorough", max_examples=100, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
# Tests use tiny tensors, where a second thread costs more in synchronisation than it gains.
torch.set_num_threads(1)
