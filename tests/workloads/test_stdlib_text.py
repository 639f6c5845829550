"""The real-text proxy: Python's own standard-library source, read from this interpreter.

Oracle: the files themselves, read directly and concatenated in the documented order.
"""

import sysconfig
from pathlib import Path

import numpy as np
import pytest

from workloads.config import WorkloadConfig
from workloads.datasets import STDLIB_MODULES, stdlib_source_bytes, tokenize_text
from workloads.workload import build_workload


def test_tokens_are_the_stdlib_files_bytes_in_order():
    root = Path(sysconfig.get_paths()["stdlib"])
    by_hand = b"".join((root / m).read_bytes() for m in STDLIB_MODULES)
    data = stdlib_source_bytes()
    assert data == by_hand and len(data) > 500_000
    tokens = tokenize_text(data, level="byte")
    assert tokens.vocab == 256 and np.array_equal(tokens.tokens[:5], list(by_hand[:5]))


def test_a_missing_module_is_named():
    with pytest.raises(ValueError, match="no_such_module.py"):
        stdlib_source_bytes(("argparse.py", "no_such_module.py"))


def test_workload_holds_out_the_tail_and_trains_on_the_rest():
    wl = build_workload(WorkloadConfig(learner="tiny-llama", data="python-stdlib", batch=2,
                                       seq=16), num_replicas=2, seed=0)
    n = len(stdlib_source_bytes())
    assert wl.vocab == 256
    assert len(wl.train_tokens) == round(0.9 * n)
    x, y = wl.make_stream(0).next_batch()
    assert x.shape == (2, 16) and int(x.max()) < 256


def test_unknown_data_names_the_allowed_sets():
    with pytest.raises(ValueError, match="python-stdlib"):
        WorkloadConfig(data="python-stdlb")
