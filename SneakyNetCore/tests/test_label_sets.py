"""Set-valued and partial labels: the declaration, the marginal loss, the sampler, and a toy problem
where today's loss unlearns a class that partially labelled cases leave out."""
import json

import numpy as np
import pytest
import torch

from sneakynet.dataset import DatasetError, load_dataset
from sneakynet.label_sets import LabelSets, LabelSetsError, parse_label_sets
from sneakynet.labels import NUM_CLASSES, load_label_table
from sneakynet.losses import dice_ce_loss, label_membership, marginal_dice_ce_loss, multires_loss
from sneakynet.models import NetOutput
from sneakynet.sampler import AugmentOptions, PatchDataset, SamplerOptions
from sneakynet.training_cases import TrainingCase
from train_helpers import make_tiny_dataset

TABLE = load_label_table()
HUMERUS_L, HUMERUS_R = TABLE.by_name("humerus_left").id, TABLE.by_name("humerus_right").id
SCAPHOID_L = TABLE.by_name("scaphoid_left").id
MANUBRIUM, BODY = TABLE.by_name("sternum_manubrium").id, TABLE.by_name("sternum_body").id


def _partial(annotated: list[str], sets: dict | None = None) -> LabelSets:
    return parse_label_sets({"annotated": annotated, "sets": sets or {}}, "test")


def test_tables_background_set_and_mirroring():
    sets = _partial(["humerus_left", "humerus_right", "rib_left_1"], {"200": ["sternum_manubrium", "sternum_body"]})
    member, lut = sets.tables()
    assert member[0, 0] and member[0, SCAPHOID_L] and not member[0, HUMERUS_L]  # background or a hand bone
    assert not member[0, MANUBRIUM] and not member[0, BODY]  # set members count as annotated
    assert np.flatnonzero(member[200]).tolist() == [MANUBRIUM, BODY] and lut[200] == 200
    assert lut[HUMERUS_L] == HUMERUS_R and lut[HUMERUS_R] == HUMERUS_L
    # rib_left_1 is annotated, rib_right_1 not: the mirrored background set gets its own row, and back
    rib_r = TABLE.by_name("rib_right_1").id
    rib_l, mirrored_bg = TABLE.by_name("rib_left_1").id, int(lut[0])
    assert member[0, rib_r] and not member[0, rib_l]
    assert mirrored_bg >= NUM_CLASSES and member[mirrored_bg, rib_l] and not member[mirrored_bg, rib_r]
    assert lut[mirrored_bg] == 0
    assert LabelSets().trivial and not sets.trivial
    labels, certain = sets.resolve(np.array([0, 200, HUMERUS_L]))
    assert labels.tolist() == [0, MANUBRIUM, HUMERUS_L] and certain.tolist() == [False, False, True]


@pytest.mark.parametrize("spec,message", [
    ({"annotated": ["humerus_middle"]}, "humerus_middle.*not a bone"),
    ({"sets": {"12": ["cranium", "mandible"]}}, "value '12' must be an integer in 126..255"),
    ({"sets": {"200": []}}, "at least one bone"),
    ({"annotated": "all", "bones": []}, "keys 'annotated' and 'sets'"),
])
def test_bad_declarations_name_the_problem(spec, message):
    with pytest.raises(LabelSetsError, match=message):
        parse_label_sets(spec, "dataset.json: label_sets")


def test_dataset_json_label_sets_are_validated_on_load(tmp_path):
    folder = make_tiny_dataset(tmp_path / "d", n_cases=3)
    meta = json.loads((folder / "dataset.json").read_text())
    meta["label_sets"] = {"annotated": ["humerus_left", "humerus_right"], "cases": {"nope": {"annotated": "all"}}}
    (folder / "dataset.json").write_text(json.dumps(meta))
    with pytest.raises(DatasetError, match=r"dataset\.json: label_sets\.cases: no case 'nope'"):
        load_dataset(folder)
    meta["label_sets"]["cases"] = {"tiny_001": {"annotated": "all"}}
    (folder / "dataset.json").write_text(json.dumps(meta))
    ds = load_dataset(folder)
    assert ds.label_sets("tiny_001").trivial and not ds.label_sets("tiny_000").trivial
    assert ds.label_sets("tiny_000").tables()[0][0, TABLE.by_name("rib_left_1").id]  # not annotated there


def _identity_sets(batch: int) -> torch.Tensor:
    return torch.from_numpy(LabelSets().tables()[0].copy())[None].repeat(batch, 1, 1)


def test_singletons_give_todays_loss():
    torch.manual_seed(0)
    logits, c1 = torch.randn(2, NUM_CLASSES, 6, 6, 6) * 3, torch.randn(2, NUM_CLASSES, 6, 6, 6)
    labels = torch.randint(0, NUM_CLASSES, (2, 6, 6, 6))
    labels1 = torch.randint(0, 4, (2, 6, 6, 6))
    sets = _identity_sets(2)
    assert float(marginal_dice_ce_loss(logits, labels, sets)) == pytest.approx(float(dice_ce_loss(logits, labels)),
                                                                              abs=1e-6)
    today, _ = multires_loss(NetOutput(logits, [c1]), labels, [labels1])
    marginal, _ = multires_loss(NetOutput(logits, [c1]), labels, [labels1], sets)
    assert abs(float(today) - float(marginal)) < 1e-6


def test_unannotated_bone_voxels_never_count_as_background():
    """A partially annotated case's background voxels where the net says 'scaphoid': no loss and no
    push against the scaphoid; today's loss treats them as background and pushes it down."""
    labels = torch.zeros(1, 4, 4, 4, dtype=torch.long)
    labels[0, :2] = HUMERUS_L
    logits = torch.full((1, NUM_CLASSES, 4, 4, 4), -10.0)
    logits[:, HUMERUS_L, :2] = 10.0
    as_scaphoid = logits.clone()
    as_scaphoid[:, SCAPHOID_L, 2:] = 10.0  # the background half predicted as scaphoid
    as_background = logits.clone()
    as_background[:, 0, 2:] = 10.0
    sets = torch.from_numpy(_partial(["humerus_left", "humerus_right"]).tables()[0].copy())[None]
    scaphoid_loss = marginal_dice_ce_loss(as_scaphoid, labels, sets)
    assert float(scaphoid_loss) == pytest.approx(float(marginal_dice_ce_loss(as_background, labels, sets)), abs=1e-6)
    assert float(scaphoid_loss) < 1e-3 and float(dice_ce_loss(as_scaphoid, labels)) > 5

    def scaphoid_gradient(loss_fn) -> float:
        x = as_scaphoid.clone().requires_grad_(True)
        loss_fn(x).backward()
        return float(x.grad[0, SCAPHOID_L, 2:].max())  # > 0: gradient descent lowers the scaphoid there

    assert scaphoid_gradient(lambda x: marginal_dice_ce_loss(x, labels, sets)) <= 1e-7
    assert scaphoid_gradient(lambda x: dice_ce_loss(x, labels)) > 1e-3


def test_membership_follows_each_samples_case():
    sets = torch.stack([_identity_sets(1)[0], torch.from_numpy(_partial(["humerus_left"]).tables()[0].copy())])
    labels = torch.zeros(2, 1, 1, 2, dtype=torch.long)
    member = label_membership(labels, sets)
    assert member.shape == (2, NUM_CLASSES, 1, 1, 2)
    assert member[0, :, 0, 0, 0].sum() == 1 and member[1, SCAPHOID_L, 0, 0, 0] and not member[1, HUMERUS_L, 0, 0, 0]


def test_sampler_carries_sets_and_mirrors_set_values():
    shape = (32, 32, 32)
    labels = np.zeros(shape, dtype=np.uint8)
    labels[4:10, 4:10, 20:26] = 200  # a sternum voxel block (set value)
    labels[12:18, 12:18, 20:26] = HUMERUS_L
    image = (labels > 0).astype(np.float32)
    sets = _partial(["humerus_left", "humerus_right", "rib_left_1"], {"200": ["sternum_manubrium", "sternum_body"]})
    case = TrainingCase("p", image, labels, (2.0, 2.0, 2.0), lr_axis=2, si_axis=0, sets=sets)
    always = AugmentOptions.none()
    always.p_mirror = 1.0
    ds = PatchDataset([case], SamplerOptions(patch_size=16, num_context=1, class_balance=1.0, augment=always),
                      samples_per_epoch=8)
    member, lut = sets.tables()
    for j in range(8):
        sample = ds[j]
        assert torch.equal(sample["sets"], torch.from_numpy(member.copy()))
        values = set(np.unique(sample["labels"][0].numpy()).tolist())
        assert values <= {int(lut[0]), 200, HUMERUS_R}  # mirrored: background set of the mirror, right humerus
        assert int(lut[0]) in values or 200 in values or HUMERUS_R in values
    from sneakynet.patch_loader import PatchLoader

    batch = next(iter(PatchLoader(ds, batch_size=2)))
    assert batch["sets"].shape == (2, 256, NUM_CLASSES) and batch["sets"].dtype == torch.bool
    plain = PatchDataset([TrainingCase("q", image, (labels == HUMERUS_L).astype(np.uint8) * HUMERUS_L,
                                       (2.0,) * 3, 2, 0)], SamplerOptions(patch_size=16), samples_per_epoch=2)
    assert "sets" not in plain[0]  # without label sets the samples (and the loss) are as before


# ----------------------------------------------------------------------------------------------
# the toy problem: bg = 0, bone A = 1 (always labelled), bone H = 2 (labelled in full cases only)

A, H, C = 1, 2, 3
FULL = torch.eye(C, dtype=torch.bool)
PARTIAL = FULL.clone()
PARTIAL[0, H] = True  # a partial case's background: background or H


def _toy_batch(rng: np.random.Generator, partial: list[bool], n: int = 12):
    images, labels = [], []
    for is_partial in partial:
        img = rng.normal(0, 0.3, (n, n, n)).astype(np.float32)
        lab = np.zeros((n, n, n), np.int64)
        for cls, value in ((A, 1.0), (H, -1.0)):
            for _ in range(2):
                z, y, x = rng.integers(0, n - 5, 3)
                box = (slice(z, z + 5), slice(y, y + 5), slice(x, x + 5))
                img[box] += value
                lab[box] = cls
        if is_partial:
            lab[lab == H] = 0  # H is there but not labelled: as an import without label sets does
        images.append(img)
        labels.append(lab)
    sets = torch.stack([PARTIAL if p else FULL for p in partial])
    return torch.from_numpy(np.stack(images))[:, None], torch.from_numpy(np.stack(labels)), sets


@torch.no_grad()
def _h_dice(net: torch.nn.Module) -> float:
    x, y, _ = _toy_batch(np.random.default_rng(123), [False] * 4)
    p = net(x).argmax(1)
    return float(2 * ((p == H) & (y == H)).sum() / ((p == H).sum() + (y == H).sum()))


def _toy_run(marginal: bool) -> tuple[float, float]:
    """Learn H on fully labelled cases, then train on 1 full : 3 partial; H's Dice after each phase."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    net = torch.nn.Sequential(torch.nn.Conv3d(1, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv3d(8, C, 1))
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)

    def step(partial: list[bool]) -> None:
        x, y, sets = _toy_batch(rng, partial)
        opt.zero_grad()
        loss, _ = multires_loss(NetOutput(net(x), []), y, (), sets if marginal else None)
        loss.backward()
        opt.step()

    for _ in range(60):
        step([False] * 4)
    learned = _h_dice(net)
    for _ in range(150):
        step([False, True, True, True])
    return learned, _h_dice(net)


def test_toy_marginal_loss_keeps_a_class_todays_loss_unlearns():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        today = _toy_run(marginal=False)
        marginal = _toy_run(marginal=True)
    finally:
        torch.set_num_threads(threads)
    assert today[0] == marginal[0] > 0.8  # same start: H learned from the fully labelled cases
    assert marginal[1] > 0.85  # kept
    assert today[1] < 0.6 and marginal[1] - today[1] > 0.3  # today's loss unlearns it (measured 0.38 vs 0.94)
