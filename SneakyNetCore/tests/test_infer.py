"""Whole-volume predictor: exact context pyramid, tiling vs whole forward, geometry, cancel, bad input."""
import numpy as np
import pytest
import SimpleITK as sitk
import torch
from torch import nn

from sneakynet.geometry import InputImageError
from sneakynet.infer import Cancelled, CancelToken, Predictor
from sneakynet.intensity import CTNormalization
from sneakynet.models import NetConfig, NetOutput, build_network
from sneakynet.pyramid import ContextPyramid
from sneakynet.tiling import padded_length, tile_starts, tile_step

torch.set_num_threads(1)


class ThresholdNet(nn.Module):
    """Label 1 where the normalised CT is above ``level``: makes the expected output exact."""

    def __init__(self, level_hu: float = 200.0, num_context: int = 0):
        super().__init__()
        variant = "A" if num_context == 0 else "D"
        self.config = NetConfig(variant, num_context, 32, widths=(1, 1, 1, 1, 1), num_classes=3)
        self.level = (level_hu - 500.0) / 1500.0  # CTNormalization defaults
        self.seen_contexts = 0

        # logits (0, score, score - 1e6) from the one feature "score": a linear 1x1 head, like the real nets
        self.head = nn.Conv3d(1, 3, 1)
        with torch.no_grad():
            self.head.weight.copy_(torch.tensor([0.0, 1.0, 1.0]).reshape(3, 1, 1, 1, 1))
            self.head.bias.copy_(torch.tensor([0.0, 0.0, -1e6]))

    def forward_features(self, target, contexts=()):
        self.seen_contexts = len(contexts)
        return (target - self.level) * 100

    def forward(self, target, contexts=(), with_context_logits=None):
        return NetOutput(self.head(self.forward_features(target, contexts)), [])


def _naive_context(padded: np.ndarray, origin, S: int, k: int) -> np.ndarray:
    """The 2^k*S cube around the tile centre, cut from the edge-padded volume and average-pooled."""
    f, pad = 2**k, (2**k - 1) * S // 2
    big = np.pad(padded.astype(np.float64), pad, mode="edge")
    cube = big[tuple(slice(o + S // 2 - f * S // 2 + pad, o + S // 2 + f * S // 2 + pad) for o in origin)]
    return cube.reshape(S, f, S, f, S, f).mean((1, 3, 5))


@pytest.mark.parametrize("k", [1, 2, 3])
def test_tile_contexts_are_the_pooled_cube_around_the_tile(k):
    """The predictor's tiles (origins on the multiple-of-16 grid) get exact contexts from the pyramid."""
    rng = np.random.default_rng(k)
    S = 32
    v = rng.random((48, 64, 80), dtype=np.float32)
    pyramid = ContextPyramid(v, S, k)
    assert pyramid.levels[0] is v  # the padded input is used as it is, not copied
    for origin in [(16, 0, 48), (0, 32, 0), (16, 32, 48)]:
        np.testing.assert_allclose(pyramid.cut(origin)[k], _naive_context(v, origin, S, k), atol=1e-5)


def test_tile_grid_covers_volume_exactly():
    for n in (1, 31, 32, 33, 100, 161):
        step = tile_step(32, 0.5)
        p = padded_length(n, 32, step)
        starts = tile_starts(p, 32, step)
        assert p >= max(n, 32) and starts[-1] + 32 == p and all(s % 16 == 0 for s in starts)


def _smooth_volume(shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    v = torch.rand((1, 1, *shape), generator=g)
    return (torch.nn.functional.avg_pool3d(v, 5, 1, 2)[0, 0] * 6 - 3).numpy()


def test_tiled_prediction_agrees_with_whole_volume_forward():
    vol = _smooth_volume((48, 64, 80))
    model = _random_bn_net(NetConfig("A", 0, 32, widths=(8, 8, 16, 16, 16), num_classes=12), 0, vol)
    labels = Predictor.from_model(model, (2, 2, 2), precision="float32", log=lambda m: None).predict_array(vol)
    with torch.no_grad():
        whole = model(torch.from_numpy(vol)[None, None]).target.argmax(1)[0].numpy()
    assert len(np.unique(whole)) >= 6  # many labels: an all-background predictor would fail
    # tiles are edge-padded at the volume border, the whole forward zero-pads: compare the inside
    inner = (slice(8, -8),) * 3
    assert (labels[inner] == whole[inner]).mean() >= 0.98
    assert (labels == whole).mean() >= 0.9


def test_splitting_the_slab_buffer_does_not_change_labels():
    vol = _smooth_volume((40, 70, 50), seed=3)
    model = _random_bn_net(NetConfig("D", 1, 32, widths=(4, 4, 8, 8, 8), num_classes=6), 1, vol)
    one = Predictor.from_model(model, (2, 2, 2), log=lambda m: None)
    small = Predictor.from_model(model, (2, 2, 2), buffer_bytes=6 * 32 * 64 * 4 * 20, log=lambda m: None)
    ra, rb = one.segment_array(vol), small.segment_array(vol)
    a, b = ra.labels, rb.labels
    assert ra.stats.parts == 1 and rb.stats.parts > 1
    assert len(np.unique(a)) >= 4  # many labels: an all-background predictor would fail
    np.testing.assert_array_equal(a, b)


def _ct_with_bone(size=(37, 29, 23), spacing=(2.0, 2.0, 2.0), direction=None, origin=(0, 0, 0), seed=0):
    rng = np.random.default_rng(seed)
    z, y, x = np.meshgrid(*[np.arange(n) for n in size[::-1]], indexing="ij")
    arr = np.full(size[::-1], -50.0) + rng.normal(0, 10, size[::-1])
    arr[(x - size[0] * 0.3) ** 2 + (y - size[1] / 2) ** 2 + (z - size[2] / 2) ** 2 < 30] = 900  # left-ish ball
    arr[(x > size[0] * 0.6) & (x < size[0] * 0.8) & (y > 4) & (y < 10)] = 700  # rod
    img = sitk.GetImageFromArray(arr.astype(np.int16))
    img.SetSpacing(spacing)
    img.SetOrigin(origin)
    if direction is not None:
        img.SetDirection(direction)
    return img


def _rotation(ax, ay, az):
    cx, sx, cy, sy, cz, sz = np.cos(ax), np.sin(ax), np.cos(ay), np.sin(ay), np.cos(az), np.sin(az)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return tuple((rz @ ry @ rx).ravel())


GRIDS = {
    "LPS": dict(direction=None, origin=(0, 0, 0)),
    "RAS": dict(direction=(-1, 0, 0, 0, -1, 0, 0, 0, 1), origin=(120.5, 80.25, -33.0)),
    "permuted": dict(direction=(0, 1, 0, 0, 0, -1, -1, 0, 0), origin=(-17.0, 4.0, 250.0)),
    "oblique": dict(direction=_rotation(0.2, -0.15, 0.3), origin=(3.3, -7.7, 11.1)),
}


@pytest.mark.parametrize("grid", list(GRIDS))
def test_output_lies_on_the_input_grid_voxel_for_voxel(grid):
    image = _ct_with_bone(**GRIDS[grid])
    predictor = Predictor.from_model(ThresholdNet(), (2.0, 2.0, 2.0), log=lambda m: None)
    labels = predictor.predict_image(image)
    assert labels.GetSize() == image.GetSize() and labels.GetSpacing() == image.GetSpacing()
    assert labels.GetOrigin() == image.GetOrigin() and labels.GetDirection() == image.GetDirection()
    assert labels.GetPixelID() == sitk.sitkUInt8
    expected = (sitk.GetArrayFromImage(image) > 200).astype(np.uint8)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(labels), expected)


@pytest.mark.parametrize("spacing", [(1.3, 1.7, 3.1), (2.5, 2.5, 1.0)])
def test_anisotropic_input_is_resampled_and_mapped_back(spacing):
    image = _ct_with_bone(size=(41, 33, 19), spacing=spacing, **GRIDS["RAS"])
    predictor = Predictor.from_model(ThresholdNet(num_context=1), (2.0, 2.0, 2.0), log=lambda m: None)
    labels = predictor.predict_image(image)
    assert predictor.model.seen_contexts == 1
    assert labels.GetSize() == image.GetSize() and labels.GetDirection() == image.GetDirection()
    assert labels.GetOrigin() == image.GetOrigin() and labels.GetSpacing() == image.GetSpacing()
    expected = sitk.GetArrayFromImage(image) > 200
    got = sitk.GetArrayFromImage(labels) == 1
    dice = 2 * (expected & got).sum() / (expected.sum() + got.sum())
    assert dice > 0.85, dice


def test_cancel_stops_within_one_batch():
    image = _ct_with_bone(size=(70, 70, 40))
    predictor = Predictor.from_model(ThresholdNet(), (2.0, 2.0, 2.0), batch_size=1, log=lambda m: None)
    token = CancelToken()
    calls = []

    def progress(fraction, message):
        calls.append(message)
        if message.startswith("tile 1/"):
            token.cancel()

    with pytest.raises(Cancelled):
        predictor.predict_image(image, progress=progress, cancel=token)
    tiles = [m for m in calls if m.startswith("tile")]
    assert len(tiles) == 1 and tiles[0].startswith("tile 1/") and int(tiles[0].split("/")[1]) > 1


def test_out_of_memory_retry_changes_that_call_only(monkeypatch):
    """On CUDA out-of-memory the call retries with a smaller batch, then a smaller buffer, then the
    CPU; the predictor keeps its own batch size, buffer and device for the next call."""
    vol = _smooth_volume((40, 48, 48), seed=9)
    model = _random_bn_net(NetConfig("D", 1, 32, widths=(4, 4, 8, 8, 8), num_classes=7), 9, vol)
    messages = []
    predictor = Predictor.from_model(model, (2, 2, 2), batch_size=4, log=messages.append)
    reference = predictor.predict_array(vol)
    real, calls = predictor._predict_inputs, []

    def flaky(inputs, progress, cancel, batch_size, buffer_bytes):
        calls.append((batch_size, buffer_bytes))
        if len(calls) < 6:  # batch 4 -> 2 -> 1, buffer 768 -> 384 -> 192 MiB, then the CPU fallback
            raise torch.cuda.OutOfMemoryError("test")
        return real(inputs, progress, cancel, batch_size, buffer_bytes)

    monkeypatch.setattr(predictor, "_predict_inputs", flaky)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: None)
    result = predictor.segment_array(vol)
    mib = 1 << 20
    assert calls == [(4, 768 * mib), (2, 768 * mib), (1, 768 * mib), (1, 384 * mib), (1, 192 * mib),
                     (1, 768 * mib)]
    assert any("runs on the CPU" in m for m in messages)
    np.testing.assert_array_equal(result.labels, reference)
    assert len(np.unique(reference)) > 2
    assert (predictor.batch_size, predictor.buffer_bytes, predictor.device.type) == (4, 768 * mib, "cpu")


def _vector_image():
    return sitk.Image([8, 8, 8], sitk.sitkVectorUInt8, 3)


BAD = {
    "components per voxel": _vector_image,
    "is 2D": lambda: sitk.Image([32, 32], sitk.sitkInt16),
    "is 4D": lambda: sitk.Image([8, 8, 8, 3], sitk.sitkInt16),
    "single slice": lambda: sitk.Image([32, 32, 1], sitk.sitkInt16),
    "no finite values": lambda: sitk.GetImageFromArray(np.full((4, 5, 6), np.nan, np.float32)),
    "no CT data": lambda: sitk.Image([8, 8, 8], sitk.sitkInt16),
}


@pytest.mark.parametrize("problem", list(BAD))
def test_non_ct_input_fails_with_a_clear_message(problem):
    predictor = Predictor.from_model(ThresholdNet(), (2.0, 2.0, 2.0), log=lambda m: None)
    with pytest.raises(InputImageError, match=problem):
        predictor.predict_image(BAD[problem]())


def test_normalisation_comes_from_the_caller():
    image = _ct_with_bone()
    # clipping at 100 HU maps every voxel below ThresholdNet's 200 HU level: nothing is bone
    custom = CTNormalization(clip_min=-1000, clip_max=100, center=500, scale=1500)
    predictor = Predictor.from_model(ThresholdNet(), (2.0, 2.0, 2.0), normalization=custom, log=lambda m: None)
    assert sitk.GetArrayFromImage(predictor.predict_image(image)).sum() == 0
    default = Predictor.from_model(ThresholdNet(), (2.0, 2.0, 2.0), log=lambda m: None)
    assert sitk.GetArrayFromImage(default.predict_image(image)).sum() > 0


@pytest.mark.parametrize("window", [(-1000, 2000), (-250, 1250)])  # the default, and a floor above -500 HU
def test_skipping_air_tiles_keeps_the_labels_and_saves_tiles(window):
    from sneakynet.intensity import CTNormalization

    vol = np.full((48, 160, 160), -1.0, np.float32)  # normalised air: the window's floor
    vol[8:40, 56:104, 56:104] = _smooth_volume((32, 48, 48), seed=4) * 0.2  # a "body" in the middle
    body_patch = np.ascontiguousarray(vol[8:40, 56:88, 56:88])  # the head's bias is centred on the body
    model = _random_bn_net(NetConfig("D", 1, 32, widths=(4, 4, 8, 8, 8), num_classes=6), 2, body_patch)
    norm = CTNormalization.window(*window)
    full = Predictor.from_model(model, (2, 2, 2), normalization=norm, skip_air=False, log=lambda m: None)
    fast = Predictor.from_model(model, (2, 2, 2), normalization=norm, skip_air=True, log=lambda m: None)
    ra, rb = full.segment_array(vol), fast.segment_array(vol)
    a, b = ra.labels, rb.labels
    assert rb.stats.tiles < ra.stats.tiles
    body = np.zeros(vol.shape, bool)
    body[8:40, 56:104, 56:104] = True
    assert len(np.unique(a[body])) >= 4  # many labels inside the body: all-background would fail
    assert (a[body] == b[body]).mean() >= 0.999  # what the network says inside the body is unchanged
    # far from the body every tile was skipped: background, whatever this random network says there
    assert (b[:, :16] == 0).all() and (b[:, -16:] == 0).all()


def test_batchnorm_folding_keeps_the_function():
    from sneakynet.infer import fold_batchnorm

    torch.manual_seed(3)
    model = build_network(NetConfig("D", 1, 32, widths=(4, 8, 8, 8, 8), num_classes=5)).eval()
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm3d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    x, c = torch.randn(1, 1, 32, 32, 32), torch.randn(1, 1, 32, 32, 32)
    fused = fold_batchnorm(model)
    assert not any(isinstance(m, torch.nn.BatchNorm3d) for m in fused.modules())
    with torch.no_grad():
        torch.testing.assert_close(fused(x, [c]).target, model(x, [c]).target, atol=1e-4, rtol=1e-4)


def _random_bn_net(config: NetConfig, seed: int, vol: np.ndarray) -> nn.Module:
    """A random net whose labels vary: the head's bias cancels the mean feature on ``vol``'s corner
    (a raw random net, with its background prior, labels every voxel background)."""
    torch.manual_seed(seed)
    model = build_network(config).eval()
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm3d):
            m.running_mean.uniform_(-0.3, 0.3)
            m.running_var.uniform_(0.5, 2.0)
    S = config.patch_size
    patch = torch.from_numpy(np.ascontiguousarray(vol[:S, :S, :S]))[None, None]
    with torch.no_grad():
        mean = model.forward_features(patch, [patch] * config.num_context).mean((0, 2, 3, 4))
        model.head.bias.copy_(-model.head.weight.flatten(1) @ mean)
    return model


def _naive_logit_sum(model, vol: np.ndarray, S: int, step: int) -> np.ndarray:
    """Reference: every tile's full logits times the Gaussian, summed into a whole (classes x volume)
    array (what MONAI's sliding window does), then argmax."""
    from sneakynet.tiling import gaussian_importance

    padded = np.pad(vol, [(0, padded_length(n, S, step) - n) for n in vol.shape], mode="edge")
    total = torch.zeros((model.config.num_classes, *padded.shape))
    w = gaussian_importance(S)
    with torch.no_grad():
        for z in tile_starts(padded.shape[0], S, step):
            for y in tile_starts(padded.shape[1], S, step):
                for x in tile_starts(padded.shape[2], S, step):
                    target = torch.from_numpy(padded[z:z + S, y:y + S, x:x + S].copy())[None, None]
                    contexts = [torch.from_numpy(_naive_context(padded, (z, y, x), S, k).astype(np.float32))[None, None]
                                for k in range(1, model.config.num_context + 1)]
                    total[:, z:z + S, y:y + S, x:x + S] += model(target, contexts).target[0] * w
    return total.argmax(0)[: vol.shape[0], : vol.shape[1], : vol.shape[2]].numpy()


def test_summing_features_then_the_head_equals_summing_logits():
    """The predictor accumulates decoder features and runs the linear head once per voxel; that
    must give the labels of the textbook sum of Gaussian-weighted tile logits."""
    vol = _smooth_volume((40, 56, 48), seed=6)
    model = _random_bn_net(NetConfig("D", 1, 32, widths=(4, 4, 8, 8, 8), num_classes=7), 5, vol)
    predictor = Predictor.from_model(model, (2, 2, 2), precision="float32", channels_last=False, skip_air=False,
                                     log=lambda m: None)
    labels = predictor.predict_array(vol)
    expected = _naive_logit_sum(model, vol, 32, predictor.step)
    assert len(np.unique(expected)) > 2  # a non-trivial labelling
    assert (labels == expected).mean() >= 0.9999


def test_channels_last_keeps_the_labels():
    vol = _smooth_volume((40, 48, 48), seed=8)
    model = _random_bn_net(NetConfig("D", 1, 32, widths=(4, 4, 8, 8, 8), num_classes=7), 7, vol)
    plain = Predictor.from_model(model, (2, 2, 2), precision="float32", channels_last=False, log=lambda m: None)
    layout = Predictor.from_model(model, (2, 2, 2), precision="float32", channels_last=True, log=lambda m: None)
    ra, rb = plain.segment_array(vol), layout.segment_array(vol)
    a, b = ra.labels, rb.labels
    assert (ra.stats.precision, ra.stats.channels_last) == ("float32", False)
    assert (rb.stats.precision, rb.stats.channels_last) == ("float32", True)
    assert len(np.unique(a)) > 2  # a non-trivial labelling
    assert (a == b).mean() >= 0.9999  # the same arithmetic in another memory order


def test_reduced_precision_keeps_the_demo_models_labels():
    """bfloat16 (the CPU default where AMX exists) and float16 with a float16 buffer (what CUDA
    runs) against float32 on the trained demo model: a random net's near-ties would say little
    about a real model's margins."""
    from sneakynet.phantom import PhantomOptions, generate_case

    ct, truth = generate_case(101, PhantomOptions(spacing=(4.0, 4.0, 4.0)))
    ref = sitk.GetArrayFromImage(truth)
    bone = ref > 0
    out = {}
    for precision in ("float32", "bfloat16", "float16"):
        predictor = Predictor(None, device="cpu", precision=precision, log=lambda m: None)
        if precision == "float16":  # the GPU's arithmetic: float16 network and float16 slab buffer
            predictor.accumulator_dtype = torch.float16
        prediction = predictor.segment(ct)
        out[precision] = sitk.GetArrayFromImage(prediction.labels)
        assert prediction.stats.precision == precision
    a = out["float32"]
    for b in (out["bfloat16"], out["float16"]):
        either = (a > 0) | (b > 0)
        assert either.sum() > 1000  # the demo model finds bone here
        assert (a == b).mean() >= 0.999 and (a[either] == b[either]).mean() >= 0.98
        assert abs((a[bone] == ref[bone]).mean() - (b[bone] == ref[bone]).mean()) < 0.01


def test_precision_is_resolved_per_device(monkeypatch):
    from sneakynet.infer import resolve_precision

    assert resolve_precision("auto", torch.device("cuda")) == torch.float16
    assert resolve_precision("float32", torch.device("cuda")) == torch.float32
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True)
    assert resolve_precision("auto", torch.device("cpu")) == torch.bfloat16
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    assert resolve_precision("auto", torch.device("cpu")) == torch.float32
    with pytest.raises(ValueError, match="precision must be one of"):
        resolve_precision("int8", torch.device("cpu"))


def test_padded_input_is_normalised_and_edge_padded_in_one_buffer():
    from sneakynet.intensity import normalize_ct

    predictor = Predictor.from_model(ThresholdNet(), (2.0, 2.0, 2.0), log=lambda m: None)
    hu = np.random.default_rng(0).normal(0, 600, size=(33, 17, 50)).astype(np.int16)
    padded = predictor._padded(hu, CTNormalization())
    expected_shape = tuple(padded_length(n, 32, predictor.step) for n in hu.shape)
    expected = np.pad(normalize_ct(hu), [(0, p - n) for n, p in zip(hu.shape, expected_shape)], mode="edge")
    assert padded.dtype == np.float32
    np.testing.assert_array_equal(padded, expected)
    with pytest.raises(ValueError, match="out must be float32"):
        normalize_ct(hu, out=np.empty((2, 2, 2), np.float32))


def test_mirrored_prediction_is_left_right_equivariant():
    """Test-time mirroring averages a tile with its mirror image (sided labels swapped back), so the
    labels of a mirrored CT are the mirrored labels with left and right swapped; a random network
    alone is not equivariant, which shows the check can fail."""
    from sneakynet.labels import load_label_table

    lut = np.asarray(load_label_table().mirror_lut())
    vol = _smooth_volume((48, 48, 64), seed=5)  # every axis on the tile grid: the tiling is symmetric
    model = _random_bn_net(NetConfig("D", 1, 32, widths=(4, 4, 8, 8, 8)), 2, vol)
    flipped = np.ascontiguousarray(vol[..., ::-1])

    def agreement(mirror: bool) -> float:
        predictor = Predictor.from_model(model, (2, 2, 2), precision="float32", skip_air=False, mirror=mirror,
                                         log=lambda m: None)
        a, b = predictor.predict_array(vol), predictor.predict_array(flipped)
        assert len(np.unique(a)) >= 10  # many labels, sided ones among them
        assert np.isin(np.unique(a), np.flatnonzero(lut != np.arange(lut.size))).any()
        return float((b == lut[a[..., ::-1]]).mean())

    assert agreement(True) >= 0.999  # float summation order may split an exact tie
    assert agreement(False) < 0.9


def test_mirroring_needs_the_label_table():
    vol = _smooth_volume((32, 32, 32))
    model = _random_bn_net(NetConfig("A", 0, 32, widths=(4, 4, 8, 8, 8), num_classes=6), 0, vol)
    with pytest.raises(ValueError, match="label table's 126 classes, this one has 6"):
        Predictor.from_model(model, (2, 2, 2), mirror=True, log=lambda m: None)
