"""The issue's headline results, each a fast CI version of a file in scenarios/ (dp-*.toml).

The full versions are marked slow (``pytest -m slow``) and their figures are recorded in
docs/methods/data-parallel.md with the command that produced them.
"""

import pytest

from sim import collectives
from tests.data_parallel.helpers import run_file

TINY = ["workload.d_model=16", "workload.n_layers=2", "workload.n_heads=2", "workload.seq=16",
        "workload.batch=4"]


def test_diloco_moves_exactly_h_times_fewer_bytes_than_ddp():
    # DDP: 100 steps = 100 all-reduces. DiLoCo (H = 10): its 10th all-reduce follows step 100,
    # so it stops at step 101. Same vector size, same ring, same 4 nodes.
    fast = ["cluster.nodes=4", "policies.diloco.inner_steps=10"]
    ddp, _ = run_file("dp-byte-ratio", [*fast, "run.steps=100"], labels=["ddp"])["ddp"]
    diloco, pol = run_file("dp-byte-ratio", [*fast, "run.steps=101"], labels=["diloco"])["diloco"]
    assert pol.group.completed == 9
    assert ddp.summary["bytes_sent"] == pytest.approx(10 * diloco.summary["bytes_sent"], rel=1e-12)


@pytest.mark.parametrize("nodes", [16, 64])
def test_sync_step_matches_closed_forms(nodes):
    # the closed forms are the fluid transport's (latency + bytes / rate per message)
    runs = run_file("dp-sync-vs-nodes", [f"cluster.nodes={nodes}", "network.transport=fluid"])
    alpha_s, beta_Bps = 0.1, 1e9 / 8
    sync = {}
    for label, (result, pol) in runs.items():
        h = result.history
        sync[label] = h[h.metric == "sync_s"].value.mean()
        m, b = pol.timing.param_bytes, pol.timing.bytes_per_param
        tensors = pol.timing.tensor_params()
    assert sync["diloco"] == pytest.approx(
        collectives.tree_allreduce_cost(nodes, m, alpha_s, beta_Bps), rel=1e-6)
    assert sync["noloco_swap"] == pytest.approx(
        collectives.pairwise_exchange_cost(2 * m, alpha_s, beta_Bps), rel=1e-6)
    # reference: per tensor, other -> root then root -> other, 2 values per parameter each way
    assert sync["noloco"] == pytest.approx(
        sum(2 * (alpha_s + 2 * n * b / beta_Bps) for n in tensors), rel=1e-6)


def test_sync_step_ratio_grows_with_node_count():
    ratio = {"noloco": {}, "noloco_swap": {}}
    for nodes in (16, 64, 256):  # fluid: the figures of docs/methods/data-parallel.md (tcp:
        # the growth holds, but the reference overtakes DiLoCo's tree at 256 nodes: 1.26x)
        runs = run_file("dp-sync-vs-nodes", [f"cluster.nodes={nodes}", "run.steps=6",
                                             "network.transport=fluid"])
        means = {label: r.history.query("metric == 'sync_s'").value.mean()
                 for label, (r, _) in runs.items()}
        for label in ratio:
            ratio[label][nodes] = means["diloco"] / means[label]
    # measured, swap: 7.8 (16), 11.6 (64), 15.5 (256); 19.4 at 1024 (slow script).
    # reference (57 tensors, 2 latency-bound messages each): 0.072, 0.11, 0.14; 0.18 at 1024
    swap, ref = ratio["noloco_swap"], ratio["noloco"]
    assert 5 < swap[16] < swap[64] < swap[256]
    assert swap[256] > 10
    assert ref[16] < ref[64] < ref[256] < 1


@pytest.mark.parametrize("stragglers", [
    'faults.stragglers={model="bimodal", p=0.1, slowdown=4}',
    'faults.stragglers={model="pareto", alpha=2.0}',
])
def test_noloco_idles_less_than_diloco_and_ddp_under_stragglers(stragglers):
    runs = run_file("dp-stragglers", ["cluster.nodes=8", "run.steps=100", stragglers,
                                      "network.transport=fluid"])
    idle = {label: r.summary["idle_fraction"] for label, (r, _) in runs.items()}
    # measured: bimodal DDP 0.20, DiLoCo 0.18, NoLoCo 0.08; Pareto 0.39, 0.46, 0.28 (fluid:
    # the figures of docs/methods/data-parallel.md). Under tcp (issue 12's default) the 4 MiB
    # window caps a connection at 2 GB/s on the 2 ms-RTT, 100 Gbit/s links, communication
    # dominates and with Pareto stragglers NoLoCo idles 0.171 against DDP's 0.146.
    assert idle["noloco"] < 0.8 * min(idle["ddp"], idle["diloco"]), idle


def test_streaming_sync_bytes_are_a_fragment_and_totals_match_diloco():
    runs = run_file("dp-streaming-bytes", ["cluster.nodes=4"])
    _, diloco = runs["diloco"]
    _, streaming = runs["streaming"]
    _, streaming_4bit = runs["streaming_4bit"]
    P = streaming.config.num_fragments
    per_sync = diloco.group.bytes_per_round[0]                   # counted by the recorder
    assert set(diloco.group.bytes_per_round) == {per_sync}
    for g in streaming.groups:
        assert g.bytes_per_round == pytest.approx([per_sync / P] * len(g.bytes_per_round))
    for g in streaming_4bit.groups:
        assert g.bytes_per_round == pytest.approx([per_sync / P * 4 / 32] * len(g.bytes_per_round))
    # over the rounds every fragment completed, total bytes equal DiLoCo's over as many rounds
    rounds = min(len(g.bytes_per_round) for g in streaming.groups)
    total = sum(sum(g.bytes_per_round[:rounds]) for g in streaming.groups)
    assert total == pytest.approx(sum(diloco.group.bytes_per_round[:rounds]))


def test_palsgd_steps_faster_than_ddp_when_compute_bound():
    # dp-palsgd timing-only (fluid: one node's GPUs): PALSGD skips the forward/backward of a
    # fraction p of its local steps and all-reduces R times every H steps. Per step (after
    # K0 = 32 DDP steps, whose all-reduce also carries AdamW's two moments: at most 3x DDP's)
    # that is (1 − p)·compute + R·allreduce/H against DDP's compute + allreduce. Time to target
    # does not reproduce the paper on this proxy (docs/methods/data-parallel.md).
    runs = run_file("dp-palsgd", ["run.timing_only=true", "run.steps=352"])
    (ddp, ddp_pol) = runs["ddp"]
    compute = ddp_pol.step_s
    ddp_step = ddp.summary["sim_time_s"] / 352
    allreduce = ddp_step - compute
    K0, H = 32, 32
    for label in ("palsgd", "palsgd_alg1"):
        pal, pal_pol = runs[label]
        R = pal_pol.config.outer_steps_per_sync
        syncs = len(pal_pol.outer_group.bytes_per_round) // R
        assert syncs == 9                     # the 10th round's steps end the run before it syncs
        # each round waits for the worker that computed the most of its H steps: between
        # "every worker skipped a fraction p" and "nobody skipped"
        mean_skip = sum(pal_pol.pulls) / 4 / (10 * H)
        fastest = (K0 * (compute + allreduce)
                   + 10 * (1 - mean_skip) * H * compute + syncs * R * allreduce)
        slowest = K0 * (compute + 3 * allreduce) + 10 * H * compute + syncs * R * allreduce
        assert fastest < pal.summary["sim_time_s"] < slowest
        # measured (seed 0, fluid): see docs/methods/data-parallel.md, "Measured figures"
        assert ddp_step / (pal.summary["sim_time_s"] / 352) > 1.1


# ---- full versions (the scenario files as they are) -------------------------------------


@pytest.mark.slow
def test_full_slow_wan():
    runs = run_file("dp-slow-wan")
    t = {label: r.time_to_target_s for label, (r, _) in runs.items()}
    assert t["diloco"] < t["ddp"] / 4 and t["noloco"] < t["ddp"] / 4


@pytest.mark.slow
def test_full_sync_step_at_1024_nodes():
    runs = run_file("dp-sync-vs-nodes", ["cluster.nodes=1024"])
    means = {label: r.history.query("metric == 'sync_s'").value.mean()
             for label, (r, _) in runs.items()}
    assert means["diloco"] / means["noloco_swap"] > 15
    assert means["diloco"] / means["noloco"] < 1


@pytest.mark.slow
def test_full_palsgd_reaches_the_target_both_ways():
    # not the paper's direction on this proxy (see docs/methods/data-parallel.md)
    runs = run_file("dp-palsgd")
    t = {label: r.time_to_target_s for label, (r, _) in runs.items()}
    assert t["palsgd"] is not None and t["ddp"] is not None


def throughput(result, pol):
    """Samples per second processed by all workers together."""
    return sum(pol.steps_done) * pol.ctx.workload.config.batch / result.summary["sim_time_s"]


def test_gossip_outpaces_allreduce_sgd_with_slow_workers_on_a_shared_network():
    # dp-hetero-gossip at 8 nodes (the slow worker is node 0) for 2 simulated minutes
    runs = run_file("dp-hetero-gossip", ["cluster.nodes=8", "cluster.speed=[0.25,1,1,1,1,1,1,1]",
                                         "run.until=2min"])
    rate = {label: throughput(r, pol) for label, (r, pol) in runs.items()}
    # measured (seed 0): DDP 96.0, D-PSGD 136.5 (1.42x), AD-PSGD 224.0 (2.33x) samples/s
    assert rate["dpsgd"] > 1.15 * rate["ddp"], rate
    assert rate["adpsgd"] > 1.5 * rate["dpsgd"], rate
