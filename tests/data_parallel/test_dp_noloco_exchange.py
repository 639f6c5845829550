"""NoLoCo's pair exchange as the reference code does it, and the symmetric swap beside it.

Reference (gensyn-ai/noloco, ``sparse_optimizer_c.outer_step``): for each parameter tensor, the
non-root member sends its slow weights and its local progress to the group root with blocking
sends, the root sends the two means back. Oracle: the tensor sizes of the real proxy model
(``named_parameters`` of the torch module), latency and bandwidth of the scenario, summed by
hand.
"""

import pytest
import torch

from policies.data_parallel.noloco import NoLoCoConfig
from tests.data_parallel.helpers import run_policy, tiny_scenario

LATENCY_S, BANDWIDTH_BPS = 0.010, 1e9 / 8


def ideal(policy_params, **kw):
    return tiny_scenario("noloco", nodes=4, steps=5, network={"model": "ideal"},
                         inner_steps=4, **policy_params, **kw)


def proxy_tensor_sizes(pol) -> list[int]:
    """Parameter count of every tensor of worker 0's real model, in registration order."""
    return [p.numel() for p in pol.learners[0].model.parameters()]


def test_timing_model_lists_the_proxy_models_tensors():
    _, pol = run_policy(ideal({}))
    assert pol.timing.tensor_params() == proxy_tensor_sizes(pol)
    assert sum(pol.timing.tensor_params()) == pol.timing.num_params


@pytest.mark.parametrize("network", ["ideal", "maxmin"])
def test_reference_exchange_costs_two_sequential_transfers_per_tensor(network):
    result, pol = run_policy(tiny_scenario("noloco", nodes=4, steps=5, inner_steps=4,
                                           network={"model": network}))
    sizes = proxy_tensor_sizes(pol)
    b = pol.timing.bytes_per_param
    # per tensor t: other -> root 2·n_t values, then root -> other 2·n_t values, each a message
    by_hand = sum(2 * (LATENCY_S + 2 * n * b / BANDWIDTH_BPS) for n in sizes)
    sync = result.history.query("metric == 'sync_s'").value
    assert len(sync) == 4                                    # one round, every worker
    assert list(sync) == pytest.approx([by_hand] * 4, rel=1e-9)
    # T tensors: 2·T messages per pair, 4·|θ|·b bytes per pair
    rec = result.recorder
    assert rec.messages_sent.sum() == 2 * 2 * len(sizes)
    assert rec.bytes_sent.sum() == pytest.approx(2 * 4 * pol.timing.param_bytes)


def test_swap_exchange_costs_one_round():
    result, pol = run_policy(ideal({"exchange": "swap"}))
    by_hand = LATENCY_S + 2 * pol.timing.param_bytes / BANDWIDTH_BPS
    sync = result.history.query("metric == 'sync_s'").value
    assert list(sync) == pytest.approx([by_hand] * 4, rel=1e-9)


def test_reference_and_swap_compute_the_same_update():
    def phis(exchange):
        _, pol = run_policy(tiny_scenario("noloco", nodes=4, steps=12, inner_steps=4,
                                          exchange=exchange))
        return torch.stack(pol.phi)
    assert torch.equal(phis("reduce_to_root"), phis("swap"))


def test_root_is_the_first_of_each_group():
    _, pol = run_policy(ideal({}))
    for r in range(3):
        roots = [i for i in range(4) if pol.is_root(i, r)]
        assert len(roots) == 2
        assert all(not pol.is_root(pol.partner_of(i, r), r) for i in roots)


def test_exchange_must_be_named():
    with pytest.raises(ValueError, match="exchange"):
        NoLoCoConfig(exchange="allreduce")
