"""Figures and figures' numbers of docs/phantom_v2.md: phantom v2 beside real CT.

Run from the repository root: ``python SneakyNetCore/docs/phantom_v2/make_figures.py``. Reads the
shared real example CT (evaluation data: only compared with, nothing is fitted here), draws
phantom v1 and v2 cases, and writes PNGs plus ``stats.json`` beside this script.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import matplotlib
import numpy as np
import SimpleITK as sitk
from scipy import ndimage

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from sneakynet.labels import load_label_table  # noqa: E402
from sneakynet.phantom import PhantomOptions, generate  # noqa: E402
from sneakynet.phantom.v2 import PhantomV2Options, generate_v2  # noqa: E402

HERE = Path(__file__).resolve().parent
CORE = HERE.parents[1]
REAL = CORE.parents[1] / "shared" / "data" / "totalseg_example"  # ../shared beside the repository
SOFT_WINDOW = (-160, 240)  # W 400, L 40
BONE_WINDOW = (-450, 1050)  # W 1500, L 300
V1_SEEDS = range(11, 15)
V2_SEEDS = range(100, 112)
V2_ABDOMEN_SEEDS = range(120, 126)
POPULATION_SEEDS = range(600, 700)  # odd: chest, even: abdomen-pelvis; 3 mm


def lps(img: sitk.Image) -> np.ndarray:
    """Array [k, j, i] with i to patient left, j to posterior, k to superior."""
    return sitk.GetArrayFromImage(sitk.DICOMOrient(img, "LPS"))


def body_mask(ct: np.ndarray) -> np.ndarray:
    """The largest connected region above -500 HU, holes filled slice by slice (the patient)."""
    lab, _ = ndimage.label(ct > -500)
    big = np.argmax(np.bincount(lab.ravel())[1:]) + 1
    mask = lab == big
    return np.stack([ndimage.binary_fill_holes(s) for s in mask])


def split(ct: np.ndarray, bone: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """HU of bone voxels and of body voxels that are not bone."""
    return ct[bone], ct[body_mask(ct) & ~bone]


def real_case() -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    """Real CT, its reference labels in our ids (0 elsewhere) and our name -> id."""
    mapping = json.loads((CORE / "src" / "sneakynet" / "resources" / "totalseg_mapping.json").read_text())
    table = load_label_table()
    ct = lps(sitk.ReadImage(str(REAL / "example_ct.nii.gz"))).astype(np.int16)
    seg = lps(sitk.ReadImage(str(REAL / "example_seg_fast_force_split.nii.gz")))
    ours = np.zeros_like(seg, dtype=np.uint8)
    for cid, name in mapping["classes"].items():
        target = mapping["to_sneakynet"].get(name)
        if target:
            ours[seg == int(cid)] = table.by_name(target).id
    return ct, ours, {b.name: b.id for b in table}


def stats(values: np.ndarray) -> dict:
    p5, p25, p50, p75, p95 = np.percentile(values, [5, 25, 50, 75, 95])
    return {"n": int(values.size), "median": float(p50), "p5": float(p5), "p25": float(p25), "p75": float(p75),
            "p95": float(p95), "below_150": float((values < 150).mean())}


def collect() -> tuple[dict, dict]:
    """Bone and soft-tissue HU of real CT, v1 (2 mm), v2 (3 mm, fields of view as drawn) and v2
    abdomen-pelvis cases under the bones the real reference labels (like for like)."""
    ct, lab, _ = real_case()
    ref_bones = np.unique(lab[lab > 0])
    out = {"real": split(ct, lab > 0)}
    parts = [split(lps(c.ct), lps(c.labels) > 0) for c in (generate(s, PhantomOptions(spacing=(2.0,) * 3))
                                                            for s in V1_SEEDS)]
    out["v1"] = tuple(np.concatenate(p) for p in zip(*parts))
    parts, kinds = [], []
    for s in V2_SEEDS:
        case = generate_v2(s, PhantomV2Options(spacing=(3.0,) * 3))
        kinds.append(f"{case.scan.kind}/{case.arms}/{case.contrast}")
        parts.append(split(lps(case.ct), lps(case.labels) > 0))
    out["v2"] = tuple(np.concatenate(p) for p in zip(*parts))
    parts = []
    for s in V2_ABDOMEN_SEEDS:
        case = generate_v2(s, PhantomV2Options(spacing=(3.0,) * 3, fov="abdomen_pelvis"))
        v_ct, v_lab = lps(case.ct), lps(case.labels)
        parts.append((v_ct[np.isin(v_lab, ref_bones)], split(v_ct, v_lab > 0)[1]))
    out["v2 abdomen-pelvis"] = tuple(np.concatenate(p) for p in zip(*parts))
    summary = {k: {"bone": stats(b), "soft": stats(s)} for k, (b, s) in out.items()}
    summary["v2_cases"] = kinds
    return out, summary


def population() -> dict:
    """Bone HU over 100 chest and abdomen-pelvis cases at 3 mm (what the marrow values were set on)."""
    values = []
    for seed in POPULATION_SEEDS:
        fov = "chest" if seed % 2 else "abdomen_pelvis"
        case = generate_v2(seed, PhantomV2Options(spacing=(3.0,) * 3, fov=fov, slice_mm=3.0))
        ct, lab = sitk.GetArrayViewFromImage(case.ct), sitk.GetArrayViewFromImage(case.labels)
        values.append(ct[lab > 0])
    return stats(np.concatenate(values))


def histograms(data: dict) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.5))
    colours = {"real": "black", "v1": "tab:red", "v2": "tab:blue", "v2 abdomen-pelvis": "tab:cyan"}
    for ax, which, rng in ((axes[0], 0, (-300, 1600)), (axes[1], 1, (-200, 150))):
        for key in colours:
            v = data[key][which]
            ax.hist(v, bins=120, range=rng, density=True, histtype="step", lw=1.8, color=colours[key],
                    ls="--" if key == "v2 abdomen-pelvis" else "-",
                    label=f"{key}: median {np.median(v):.0f} HU")
        ax.set_xlabel("HU")
        ax.legend()
    axes[0].set_title("bone voxels (under bone labels)")
    axes[1].set_title("soft tissue (body, not bone)")
    fig.tight_layout()
    fig.savefig(HERE / "hu_histograms.png", dpi=80)
    plt.close(fig)


def _level_slices(lab: np.ndarray, ids: dict[str, int]) -> list[int]:
    """Axial slice indices through L1, L4 and the femoral heads."""
    def zc(name: str) -> int:
        return int(np.nonzero(lab == ids[name])[0].mean())
    femur = np.nonzero(lab == ids["femur_right"])[0]
    return [zc("vertebra_L1"), zc("vertebra_L4"), int(femur.max()) - 8]


def crop(img: np.ndarray, centre: tuple[int, int], n: int, fill: float) -> np.ndarray:
    """``n`` x ``n`` window of the 2D ``img`` centred on ``centre`` (padded with ``fill``): one physical scale."""
    out = np.full((n, n), fill, dtype=np.float32)
    r0, c0 = centre[0] - n // 2, centre[1] - n // 2
    rs, cs = slice(max(r0, 0), min(r0 + n, img.shape[0])), slice(max(c0, 0), min(c0 + n, img.shape[1]))
    out[rs.start - r0:rs.stop - r0, cs.start - c0:cs.stop - c0] = img[rs, cs]
    return out


def side_by_side() -> None:
    """Real abdomen CT and a v2 abdomen-pelvis case at the same levels, in the same windows."""
    ct_r, lab_r, ids = real_case()
    case = generate_v2(101, PhantomV2Options(spacing=(3.0,) * 3, fov="abdomen_pelvis", arms="raised"))
    ct_v, lab_v = lps(case.ct), lps(case.labels)
    rows = [("real CT (3 mm)", ct_r, _level_slices(lab_r, ids)), ("phantom v2 (3 mm)", ct_v, _level_slices(lab_v, ids))]
    fig, axes = plt.subplots(2, 4, figsize=(17, 8.6))
    for r, (title, ct, ks) in enumerate(rows):
        body = body_mask(ct)
        for c, (k, what) in enumerate(zip(ks, ("L1", "L4", "hip joints"))):
            jj, ii = np.nonzero(body[k])
            view = crop(np.maximum(ct[k], -1024), (int(jj.mean()), int(ii.mean())), 140, -1024)
            axes[r, c].imshow(view, cmap="gray", vmin=SOFT_WINDOW[0], vmax=SOFT_WINDOW[1])
            axes[r, c].set_title(f"{title}: {what}, W400 L40")
        j = int(np.nonzero(lab_r == ids["vertebra_L3"])[1].mean()) if r == 0 else \
            int(np.nonzero(lab_v == ids["vertebra_L3"])[1].mean())
        axes[r, 3].imshow(ct[::-1, j, :], cmap="gray", vmin=BONE_WINDOW[0], vmax=BONE_WINDOW[1])
        axes[r, 3].set_title(f"{title}: coronal, W1500 L300")
    for ax in axes.ravel():
        ax.set_axis_off()
    fig.tight_layout()
    fig.savefig(HERE / "v2_vs_real.png", dpi=70)
    plt.close(fig)


GALLERY = ((200, "chest", "raised"), (201, "abdomen_pelvis", "crossed"), (202, "neck_chest", "sides"),
           (203, "whole", "one_up"), (204, "random", "raised"))


def gallery() -> None:
    """Fields of view and arm poses: a coronal CT slice through the spine and the labels (projection)."""
    fig, axes = plt.subplots(2, len(GALLERY), figsize=(18, 9))
    for c, (seed, fov, arms) in enumerate(GALLERY):
        case = generate_v2(seed, PhantomV2Options(spacing=(3.0,) * 3, fov=fov, arms=arms))
        ct, lab = lps(case.ct), lps(case.labels)
        spine = np.nonzero((lab >= 1) & (lab <= 24))[1]
        j = int(np.median(spine)) if spine.size else ct.shape[1] // 2
        ext = [0, ct.shape[2] * 3, 0, ct.shape[0] * 3]
        axes[0, c].imshow(ct[::-1, j, :], cmap="gray", vmin=-1100, vmax=1100, extent=ext)
        axes[0, c].set_title(f"{fov}, arms {arms}\n{case.contrast} contrast, pad {case.scan.padding}")
        proj = lab.max(axis=1)[::-1].astype(float)
        proj[proj == 0] = np.nan
        axes[1, c].imshow(np.zeros_like(proj), cmap="gray", extent=ext)
        axes[1, c].imshow(proj, cmap="tab20", interpolation="nearest", extent=ext)
        axes[1, c].set_title(f"labels: {125 - len(case.missing)} of 125 bones")
    for ax in axes.ravel():
        ax.set_xlabel("mm")
    fig.tight_layout()
    fig.savefig(HERE / "fov_poses.png", dpi=60)
    plt.close(fig)


def _timed(make) -> dict:
    """CPU seconds (this process; the machine is shared) and wall seconds of ``make()``, and the size."""
    c0, w0 = time.process_time(), time.perf_counter()
    case = make()
    return {"cpu_s": round(time.process_time() - c0, 2), "wall_s": round(time.perf_counter() - w0, 2),
            "size": list(case.ct.GetSize()), "spacing": [round(v, 2) for v in case.ct.GetSpacing()]}


def timing() -> dict:
    """Seconds per case at 2 mm per field of view (v1 for comparison), and at the drawn scanner spacing."""
    out = {f"2mm_{fov}": _timed(lambda fov=fov: generate_v2(300, PhantomV2Options(spacing=(2.0,) * 3, fov=fov)))
           for fov in ("chest", "abdomen_pelvis", "neck_chest", "random", "whole")}
    out["2mm_v1"] = _timed(lambda: generate(300, PhantomOptions(spacing=(2.0,) * 3)))
    for seed in (301, 302, 303):
        out[f"drawn_{seed}"] = _timed(lambda seed=seed: generate_v2(seed))
    return out


def main() -> None:
    data, summary = collect()
    histograms(data)
    side_by_side()
    gallery()
    summary["timing"] = timing()
    summary["v2_population_bone"] = population()
    (HERE / "stats.json").write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
