"""fit under torchrun with 2 CPU processes (gloo) follows the 1-process loss curve."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from xearthformer._precision import golden_tolerance
from xearthformer.zoo.model_dir import load_model_dir

#: fit's default learning rate, and the steps of the runs below
LR, STEPS = 1e-3, 8

SCRIPT = textwrap.dedent('''
    import sys
    import torch
    torch.set_num_threads(1)
    sys.path.insert(0, {tests!r})
    from helpers import TINY, radar_events
    from xearthformer import fit
    options = dict(loss="balanced", augment="flip_rotate") if sys.argv[2] == "augmented" else {{}}
    fit(dict(TINY), radar_events(n_events=3), valid=radar_events(n_events=2, seed=1, prefix="V"),
        in_len=3, out_len=2, steps=8, batch_size=4, valid_every=4, seed=1, progress=False,
        out_dir=sys.argv[1], **options)
''')


def _run(args: list[str], tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for key in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    result = subprocess.run([sys.executable, *args], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["plain", "augmented"])
def test_two_gloo_processes_match_one_process(tmp_path, variant, skip_or_fail):
    """Also with the balanced loss and flips/turns: each window's transform depends on its
    position in the global batch, not on the rank that computes it."""
    if not torch.distributed.is_available():
        skip_or_fail("this torch build has no torch.distributed")
    script = tmp_path / "train.py"
    script.write_text(SCRIPT.format(tests=str(Path(__file__).parent)))
    _run([str(script), str(tmp_path / "one"), variant], tmp_path)
    _run(["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(script),
          str(tmp_path / "two"), variant], tmp_path)
    one, w1 = load_model_dir(tmp_path / "one")
    two, w2 = load_model_dir(tmp_path / "two")
    assert two.training["world_size"] == 2 and one.training["world_size"] == 1
    curve1 = torch.tensor(one.training["loss_curve"])
    curve2 = torch.tensor(two.training["loss_curve"])
    assert curve1.shape == curve2.shape == (8, 2)
    # the loss of a float32 network over a batch, summed as one batch or as two halves
    # all-reduced (another order): golden_tolerance relative to max(1, |loss|)
    tol = golden_tolerance("float32")
    torch.testing.assert_close(curve2, curve1, rtol=tol, atol=tol)
    # Weights agree to rounding, except that conv biases right before a GroupNorm have a zero
    # gradient in exact arithmetic: AdamW turns their rounding noise into steps of up to
    # lr * (1 - beta1) / sqrt(1 - beta2) = 3.2 lr each (Kingma & Ba 2015, section 2.1; torch's
    # default betas), so two runs part by at most 2 * STEPS * 3.2 lr.
    for key in w1:
        torch.testing.assert_close(w2[key], w1[key], rtol=0,
                                   atol=2 * STEPS * LR * 0.1 / 0.001 ** 0.5)
    # Validation CSI-M from pooled counts: the same counts unless a prediction lies within
    # the runs' difference of a threshold (each such pixel moves CSI_t by about 1 / (H + M + F),
    # ~1e-3 here). Counts are integers, exact in float64 in any summation order, and CSI-M is
    # the same arithmetic on them: equal counts give equal bits, so the check is exact.
    s1, s2 = one.training["scores"]["model"], two.training["scores"]["model"]
    assert s2["csi_m"] == s1["csi_m"]
    assert not (tmp_path / "two.work").exists()
    if variant == "augmented":
        assert two.training["loss"] == one.training["loss"] == "balanced"
        assert two.training["augment"] == "flip_rotate"
