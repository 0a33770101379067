"""Networks A/B/C/D: parameter counts vs Table 1, crop-skip alignment, training step, input checks."""
import pytest
import torch
import torch.nn.functional as F

from sneakynet.losses import multires_loss
from sneakynet.models import (PAPER_PARAMS, NetConfig, build_network, count_parameters, crop_skip,
                              crop_skip_links, preset)
from sneakynet.models import network as network_module

PAPER_ROWS = [("A", 0, "paper"), ("B", 1, "paper"), ("C", 1, "paper"), ("D", 1, "paper"), ("D", 2, "paper"),
              ("D", 3, "paper"), ("slim", 0, "slim")]


@pytest.mark.parametrize("variant,k,name", PAPER_ROWS)
def test_paper_presets_match_table1_parameter_counts(variant, k, name):
    v = "A" if variant == "slim" else variant
    with torch.device("meta"):  # no memory is allocated
        model = build_network(preset(name, v, k, patch_size=128 if name == "slim" else 64))
    n = count_parameters(model)
    expected = PAPER_PARAMS[(variant, k)]
    assert abs(n / expected - 1) <= 0.15, f"{variant} K={k}: {n:.3e} vs Table 1 {expected:.1e}"


@pytest.mark.parametrize("variant,k", [("A", 0), ("B", 1), ("C", 1), ("D", 1), ("D", 2), ("D", 3)])
def test_lite_presets_fit_two_cpu_cores_at_matched_size(variant, k):
    n = count_parameters(build_network(preset("lite", variant, k, patch_size=32)))
    assert 1e6 <= n <= 3.5e6
    if k == 1:  # the ablation compares A, B, C, D (K=1) at matched parameter counts
        a = count_parameters(build_network(preset("lite", "A", 0, patch_size=32)))
        assert abs(n / a - 1) < 0.1


def _region_with_marker(S, K, p):
    region = torch.zeros(1, 1, *(2**K * S,) * 3)
    off = (2**K * S - S) // 2
    region[0, 0, p[0] + off, p[1] + off, p[2] + off] = 1.0
    return region


def _cut(region, K, S, k):
    n = 2**k * S
    start = (region.shape[-1] - n) // 2
    cube = region[..., start:start + n, start:start + n, start:start + n]
    return F.avg_pool3d(cube, 2**k) if k else cube


def _marker_index(x):
    flat = int(torch.argmax(x.flatten()))
    return tuple(int(i) for i in torch.unravel_index(torch.tensor(flat), x.shape[-3:]))


@pytest.mark.parametrize("K", [1, 2, 3])
def test_marker_lands_at_same_place_in_target_and_every_crop_skip(K):
    """A marker voxel in the image, followed through the encoder's pooling, appears in each
    crop-skip at exactly the voxel of the target level it is concatenated into."""
    S = 32
    config = NetConfig(variant="D", num_context=K, patch_size=S)
    links = crop_skip_links(config)
    assert {k for k, _, _ in links} == set(range(1, K + 1))
    for p in [(0, 0, 0), (31, 31, 31), (5, 17, 30), (16, 15, 16), (31, 0, 9)]:
        region = _region_with_marker(S, K, p)
        target = _cut(region, K, S, 0)
        assert _marker_index(target) == p
        for k, m, t in links:
            context = _cut(region, K, S, k)
            assert context.shape[-3:] == (S, S, S)
            source = F.max_pool3d(context, 2**m) if m else context  # level-m encoder resolution
            crop = crop_skip(source, k)
            target_level = F.max_pool3d(target, 2**t)
            assert crop.shape == target_level.shape, (k, m, t)
            assert crop.max() > 0, f"marker {p} lost in crop-skip k={k} m={m}"
            assert _marker_index(crop) == _marker_index(target_level) == tuple(c // 2**t for c in p)


def test_hooknet_has_one_bottleneck_crop_skip_and_mrn_every_level():
    assert crop_skip_links(NetConfig("B", 1, 64)) == [(1, 3, 4)]
    assert crop_skip_links(NetConfig("C", 1, 64)) == [(1, 0, 1), (1, 1, 2), (1, 2, 3), (1, 3, 4)]
    assert crop_skip_links(NetConfig("A", 0, 64)) == []


def _batch(config, batch=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    S = config.patch_size
    x = torch.randn(batch, 1, S, S, S, generator=g)
    ctx = [torch.randn(batch, 1, S, S, S, generator=g) for _ in range(config.num_context)]
    y = torch.randint(0, config.num_classes, (batch, S, S, S), generator=g)
    cy = [torch.randint(0, config.num_classes, (batch, S, S, S), generator=g) for _ in range(config.num_context)]
    return x, ctx, y, cy


def test_lite_d_k2_forward_backward_reaches_every_context_branch():
    torch.manual_seed(0)
    config = preset("lite", "D", 2, patch_size=32)
    model = build_network(config).train()
    x, ctx, y, cy = _batch(config)
    out = model(x, ctx)
    assert out.target.shape == (2, 126, 32, 32, 32)
    assert len(out.context) == 2 and all(c.shape == (2, 126, 32, 32, 32) for c in out.context)
    loss, parts = multires_loss(out, y, cy)
    assert torch.isfinite(loss) and set(parts) == {"target", "context1", "context2", "total"}
    loss.backward()
    for k in range(2):
        for name, module in (("encoder", model.context_encoders[k]), ("decoder", model.context_decoders[k])):
            grads = [p.grad for p in module.parameters()]
            assert all(g is not None for g in grads), (k, name)
            assert sum(float(g.abs().sum()) for g in grads) > 0, (k, name)
    model.eval()
    with torch.no_grad():
        assert model(x, ctx).context == []  # inference skips the context decoders


def test_mrn_context_gets_gradients_only_through_crop_skips(monkeypatch):
    torch.manual_seed(0)
    config = preset("lite", "C", 1, patch_size=32)
    model = build_network(config).train()
    assert len(model.context_decoders) == 0
    x, ctx, y, _ = _batch(config)
    out = model(x, ctx)
    assert out.context == []
    loss, parts = multires_loss(out, y)
    assert set(parts) == {"target", "total"}
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.context_encoders[0].parameters())
    model.zero_grad(set_to_none=True)
    monkeypatch.setattr(network_module, "crop_skip", lambda f, k: crop_skip(f, k).detach())
    loss, _ = multires_loss(model(x, ctx), y)
    loss.backward()
    assert all(p.grad is None for p in model.context_encoders[0].parameters())


@pytest.mark.parametrize("variant,k", [("A", 0), ("B", 1), ("C", 1), ("D", 3)])
def test_every_variant_runs_and_context_loss_only_for_b_and_d(variant, k):
    config = NetConfig(variant=variant, num_context=k, patch_size=32, widths=(4, 4, 8, 8, 8))
    model = build_network(config).train()
    x, ctx, y, cy = _batch(config, batch=1)
    out = model(x, ctx)
    assert out.target.shape[-3:] == (32, 32, 32)
    assert len(out.context) == (k if variant in "BD" else 0)


@pytest.mark.parametrize("variant,k", [("A", 0), ("C", 1), ("D", 2)])
def test_head_of_forward_features_is_the_target_output(variant, k):
    """The predictor relies on target logits = head(forward_features) (a linear 1x1 layer)."""
    config = NetConfig(variant=variant, num_context=k, patch_size=32, widths=(4, 4, 8, 8, 8), num_classes=5)
    model = build_network(config).eval()
    x, ctx, _, _ = _batch(config, batch=2)
    with torch.no_grad():
        features = model.forward_features(x, ctx)
        assert features.shape == (2, 4, 32, 32, 32)
        torch.testing.assert_close(model.head(features), model(x, ctx).target)
    with pytest.raises(ValueError, match="context patch"):
        model.forward_features(x, ctx[:-1] if k else [x])


def test_wrong_inputs_raise_value_error_naming_shapes():
    model = build_network(NetConfig("D", 1, 32, widths=(4, 4, 8, 8, 8))).eval()
    good = torch.zeros(1, 1, 32, 32, 32)
    with pytest.raises(ValueError, match=r"multiple of 32.*\(40, 32, 32\)"):
        model(torch.zeros(1, 1, 40, 32, 32), [torch.zeros(1, 1, 40, 32, 32)])
    with pytest.raises(ValueError, match="expects 1 context patch"):
        model(good, [])
    with pytest.raises(ValueError, match=r"context patch 1 must have shape \(1, 1, 32, 32, 32\), got \(1, 1, 16, 16, 16\)"):
        model(good, [torch.zeros(1, 1, 16, 16, 16)])
    with pytest.raises(ValueError, match=r"1 channel\(s\), got shape \(1, 2, 32, 32, 32\)"):
        model(torch.zeros(1, 2, 32, 32, 32), [good])
    unet = build_network(NetConfig("A", 0, 16, widths=(4, 4, 8, 8, 8))).eval()
    with pytest.raises(ValueError, match=r"multiple of 16 per dimension, got \(16, 24, 16\)"):
        unet(torch.zeros(1, 1, 16, 24, 16))
    assert unet(torch.zeros(1, 1, 16, 32, 48)).target.shape == (1, 126, 16, 32, 48)  # A takes any multiple of 16


def test_config_round_trips_through_json_and_rejects_bad_values():
    config = preset("lite", "D", 2, patch_size=64)
    assert NetConfig.from_dict(__import__("json").loads(config.to_json())) == config
    with pytest.raises(ValueError, match="variant C needs K"):
        NetConfig("C", 0, 32)
    with pytest.raises(ValueError, match="multiple of 32"):
        NetConfig("D", 1, 48)
    with pytest.raises(ValueError, match="unknown network config keys"):
        NetConfig.from_dict({**config.to_dict(), "dropout": 0.1})


def test_heads_start_at_ninety_percent_background():
    model = build_network(preset("lite", "D", 1, patch_size=32)).eval()
    x = torch.zeros(1, 1, 32, 32, 32)
    with torch.no_grad():
        out = model(x, [x], with_context_logits=True)
    for logits in [out.target, *out.context]:
        p_background = torch.softmax(logits, 1)[:, 0].mean()
        assert 0.6 < float(p_background) < 0.99
