"""The decoder and its stage split: equality with the unsplit model, paths, parameter counts."""

import pytest
import torch

from workloads import Llama, LlamaConfig, StagedModel, llama_timing, preset_names, preset_timing
from workloads.llama import stage_layer_ranges
from workloads.timing import reference_rows

CFG = LlamaConfig(vocab=32, d_model=32, n_layers=6, n_heads=4, max_seq=32)


def make_model(cfg: LlamaConfig = CFG, seed: int = 0) -> Llama:
    return Llama(cfg, generator=torch.Generator().manual_seed(seed))


def tokens(batch: int = 3, seq: int = 16, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, CFG.vocab, (batch, seq), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("num_stages", [1, 2, 3, 6])
@pytest.mark.parametrize("head_stage", ["first", "last"])
def test_full_path_equals_unsplit_model_exactly(num_stages, head_stage):
    model = make_model()
    staged = StagedModel(model, num_stages, head_stage=head_stage)
    x = tokens()
    assert torch.equal(staged.forward_path(x, list(range(num_stages))), model(x))


def test_full_path_gradients_equal_unsplit_gradients():
    model = make_model()
    staged = StagedModel(model, 3)
    x, y = tokens(), tokens(seed=2)
    for m in (model, staged):
        logits = m(x)
        torch.nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten()).backward()
    g_full = torch.cat([p.grad.flatten() for p in model.blocks[2].parameters()])
    g_stage = torch.cat([p.grad.flatten() for p in staged.stages[1].blocks[0].parameters()])
    assert torch.equal(g_full, g_stage)  # block 2 is the first block of stage 1


def test_skipped_stage_gets_no_gradient_and_swap_changes_output():
    staged = StagedModel(make_model(), 3)
    x = tokens()
    staged.forward_path(x, [0, 2]).sum().backward()
    assert all(p.grad is None for p in staged.stages[1].parameters())
    assert all(p.grad is not None for p in staged.stages[2].parameters())
    assert not torch.allclose(staged.forward_path(x, [0, 2, 1]), staged.forward_path(x, [0, 1, 2]))


@pytest.mark.parametrize("path", [[1, 2], [0, 1, 1], [0, 3], []])
def test_bad_paths_are_rejected(path):
    staged = StagedModel(make_model(), 3)
    with pytest.raises(ValueError, match="path"):
        staged.forward_path(tokens(), path)


def test_stages_are_copies_holding_embedding_and_head_where_asked():
    model = make_model()
    staged = StagedModel(model, 3, head_stage="first")
    assert staged.stages[0].head is not None and staged.stages[2].head is None
    with torch.no_grad():
        model.embed.weight.zero_()
    assert staged.stages[0].embed.weight.abs().sum() > 0  # not shared with the source model


def test_attention_is_causal():
    model = make_model()
    x = tokens(batch=1)
    x2 = x.clone()
    x2[0, 10:] = (x2[0, 10:] + 1) % CFG.vocab
    assert torch.equal(model(x)[0, :10], model(x2)[0, :10])
    assert not torch.allclose(model(x)[0, 10:], model(x2)[0, 10:])


@pytest.mark.parametrize(
    "cfg",
    [CFG, LlamaConfig(vocab=50, d_model=64, n_layers=3, n_heads=8, d_ff=100), LlamaConfig()],
)
def test_timing_parameter_count_equals_torch_count(cfg):
    model = make_model(cfg)
    direct = sum(p.numel() for p in model.parameters())
    timing = llama_timing(cfg)
    assert timing.num_params == direct
    for head_stage in ("first", "last"):
        staged = StagedModel(model, 3, head_stage=head_stage)
        counts = [sum(p.numel() for p in s.parameters()) for s in staged.stages]
        assert timing.stage_params(3, head_stage=head_stage) == counts


def test_preset_parameter_counts_match_reference_csv():
    for row in reference_rows():
        assert preset_timing(row.model).num_params == row.params
    assert preset_names() == ["llama-125m", "llama-350m", "llama-1b", "llama-3b", "llama-8b"]


def test_stage_layer_ranges_cover_all_layers_in_order():
    ranges = stage_layer_ranges(10, 4)
    assert [len(r) for r in ranges] == [3, 3, 2, 2]
    assert [i for r in ranges for i in r] == list(range(10))
    with pytest.raises(ValueError, match="num_stages"):
        stage_layer_ranges(3, 4)
