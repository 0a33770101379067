"""``sneakynet segment`` folder mode on two gloo ranks (CPU): cases shared out, each written once,
results equal to one process, a broken case reported without stopping the others, resume.

The bundled demo model (phantom-trained, not for clinical use) on 36^3 crops of a 4 mm phantom,
``--fast``: a few tiles per case, so the whole module takes seconds plus the start of the ranks.
"""
import json
import os
import socket
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch
import torch.multiprocessing as mp

from sneakynet.batch_infer import shard
from sneakynet.cli import main

GOOD = ["case0", "case1", "case2"]
BROKEN = "case3_broken"
OPTIONS = ["--device", "cpu", "--fast"]


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    """Three phantom crops and one damaged file, sorted so the broken one falls to rank 1."""
    from sneakynet.phantom import PhantomOptions, generate_case

    folder = tmp_path_factory.mktemp("cases")
    ct, _ = generate_case(0, PhantomOptions(spacing=(4.0, 4.0, 4.0)))
    for name, (x, y, z) in zip(GOOD, [(30, 20, 60), (40, 30, 100), (20, 25, 120)]):
        sitk.WriteImage(ct[x:x + 36, y:y + 36, z:z + 36], str(folder / f"{name}.nii.gz"))
    (folder / f"{BROKEN}.nii.gz").write_bytes(b"not a NIfTI file")
    return folder


@pytest.fixture(scope="module")
def reference(cases, tmp_path_factory):
    """The same folder in one process (one thread, as each rank runs)."""
    out = tmp_path_factory.mktemp("single")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main(["segment", str(cases), str(out), *OPTIONS]) == 2  # the broken case
    finally:
        torch.set_num_threads(threads)
    assert sorted(p.name for p in out.iterdir()) == [f"{n}.nii.gz" for n in GOOD]
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank(rank: int, world: int, port: int, argv: list[str], logs: str) -> None:
    """One torchrun-like rank: the environment torchrun sets, every label write logged."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_WORLD_SIZE=str(world))
    torch.set_num_threads(1)
    import sneakynet.commands.segment as segment

    write = segment.write_labels

    def logged_write(labels, output):
        write(labels, output)
        with open(Path(logs) / f"writes_{rank}.txt", "a") as f:
            f.write(f"{Path(output).name}\n")

    segment.write_labels = logged_write
    with open(Path(logs) / f"out_{rank}.txt", "w") as out, redirect_stdout(out), redirect_stderr(out):
        code = main(argv)
    (Path(logs) / f"code_{rank}.json").write_text(json.dumps(code))


def _same_labels(a: Path, b: Path) -> None:
    ia, ib = sitk.ReadImage(str(a)), sitk.ReadImage(str(b))
    assert ia.GetSize() == ib.GetSize() and ia.GetOrigin() == ib.GetOrigin() and ia.GetSpacing() == ib.GetSpacing()
    np.testing.assert_array_equal(sitk.GetArrayViewFromImage(ia), sitk.GetArrayViewFromImage(ib))


def test_shard_gives_every_case_to_exactly_one_rank():
    for n in range(0, 9):
        for world in range(1, 5):
            shares = [shard(list(range(n)), r, world) for r in range(world)]
            assert sorted(sum(shares, [])) == list(range(n))
            assert max(map(len, shares)) - min(map(len, shares)) <= 1
    with pytest.raises(ValueError, match="rank 2"):
        shard([1, 2], 2, 2)


@pytest.mark.timeout(180)
def test_two_ranks_write_each_case_once_equal_to_one_process(cases, reference, tmp_path):
    out, logs = tmp_path / "out", tmp_path / "logs"
    logs.mkdir()
    argv = ["segment", str(cases), str(out), *OPTIONS]
    mp.start_processes(_rank, args=(2, _free_port(), argv, str(logs)), nprocs=2, join=True, start_method="spawn")
    codes = [json.loads((logs / f"code_{r}.json").read_text()) for r in range(2)]
    assert codes == [2, 2], "every rank exits with the worst code (the broken case on rank 1)"
    writes = [(logs / f"writes_{r}.txt").read_text().split() if (logs / f"writes_{r}.txt").exists() else []
              for r in range(2)]
    assert writes == [["case0.nii.gz", "case2.nii.gz"], ["case1.nii.gz"]]  # round-robin, each once
    for name in GOOD:
        _same_labels(out / f"{name}.nii.gz", reference / f"{name}.nii.gz")
    assert sorted(p.name for p in out.iterdir()) == [f"{n}.nii.gz" for n in GOOD]
    rank0, rank1 = ((logs / f"out_{r}.txt").read_text() for r in range(2))
    assert "sharing 4 case(s) over 2 ranks" in rank0
    assert "rank 0 (cpu): 2 of 2 case(s) segmented" in rank0 and "rank 1 (cpu): 1 of 2 case(s) segmented" in rank0
    assert "1 of 4 case(s) failed" in rank0 and f"{BROKEN}.nii.gz: not a readable image" in rank0
    assert "case(s) failed" not in rank1 and "rank 0 (cpu)" not in rank1  # the summary is rank 0's alone
    assert "Demo model trained on synthetic phantom CT only" in rank0 and "Demo model" not in rank1


@pytest.mark.timeout(120)
def test_bad_input_is_said_once_by_rank_0_and_every_rank_exits_2(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    argv = ["segment", str(tmp_path / "missing"), str(tmp_path / "out"), *OPTIONS]
    mp.start_processes(_rank, args=(2, _free_port(), argv, str(logs)), nprocs=2, join=True, start_method="spawn")
    assert [json.loads((logs / f"code_{r}.json").read_text()) for r in range(2)] == [2, 2]
    rank0, rank1 = ((logs / f"out_{r}.txt").read_text() for r in range(2))
    assert "missing: input does not exist" in rank0 and "does not exist" not in rank1
    assert not (tmp_path / "out").exists()


@pytest.mark.timeout(180)
def test_torchrun_resumes_skipping_finished_outputs(cases, reference, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    for name in ("case0", "case2"):  # finished earlier: must stay untouched
        (out / f"{name}.nii.gz").write_bytes((reference / f"{name}.nii.gz").read_bytes())
    before = {name: os.stat(out / f"{name}.nii.gz") for name in ("case0", "case2")}
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "sneakynet.cli", "segment", str(cases), str(out), *OPTIONS]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=170)
    text = result.stdout + result.stderr
    assert result.returncode != 0, text  # the broken case is still broken; torchrun exits 1
    assert "exitcode  : 2" in text, text[-3000:]
    assert "skipping 2 finished case(s)" in text and "sharing 2 case(s) over 2 ranks" in text, text[-3000:]
    for name, st in before.items():
        now = os.stat(out / f"{name}.nii.gz")
        assert (now.st_ino, now.st_mtime_ns) == (st.st_ino, st.st_mtime_ns), f"{name} was rewritten"
    _same_labels(out / "case1.nii.gz", reference / "case1.nii.gz")
