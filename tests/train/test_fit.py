"""fit(): the model directory it writes, resuming, the model sources and the bad inputs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from xearthformer import fit
from xearthformer.models import Earthformer, EarthformerConfig
from xearthformer.train import MemoryBudgetError, NotEnoughDataError, PrecisionError, TrainingError
from xearthformer.train.checkpoint import work_dir
from xearthformer.train.errors import ResumeMismatchError
from xearthformer.zoo.model_dir import ModelDirError, load_model_dir

from .helpers import FAST, TINY, interrupted_radar_run, monthly_sst, radar_events

TRAINING_KEYS = {
    "started_from", "fine_tuned", "train", "valid", "in_len", "out_len", "steps", "steps_done",
    "epochs", "batch_size", "lr", "weight_decay", "warmup_fraction", "min_lr_ratio",
    "clip_grad_norm", "valid_every", "early_stopping_patience", "stopped_early", "seed",
    "device", "precision", "world_size", "memory_per_batch_bytes", "loss_curve",
    "loss_summary", "monitor", "validation", "best_step", "scores", "seconds", "notes",
    "trainer", "loss", "augment",
}


@pytest.fixture(scope="module")
def enso_model(tmp_path_factory):
    out = tmp_path_factory.mktemp("fit") / "enso"
    torch.set_num_threads(1)
    valid = monthly_sst(seed=1, start="2010-01-01")
    return fit(dict(TINY), monthly_sst(), valid=valid, in_len=4, out_len=3, steps=6,
               valid_every=3, out_dir=out, **FAST)


def test_model_directory_has_the_expected_contract(enso_model, capsys):
    card, weights = load_model_dir(enso_model)
    c = card.contract
    assert card.kind == "earthformer" and card.name == "enso"
    assert card.official_kwargs["input_shape"] == [4, 4, 8, 1]
    assert card.official_kwargs["target_shape"] == [3, 4, 8, 1]
    assert (c.in_len, c.out_len, c.step, c.step_units) == (4, 3, 1, "months")
    assert c.anomaly and c.climatology.shape == (12, 4, 8) and c.land_mask[0, 0]
    model = Earthformer.from_official_kwargs(card.official_kwargs)
    model.load_state_dict(weights, strict=True)
    assert set(card.training) == TRAINING_KEYS
    t = card.training
    assert t["steps_done"] == 6 and len(t["loss_curve"]) == 6 and t["monitor"] == "c_nino34_m"
    assert [v["step"] for v in t["validation"]] == [3, 6]
    assert set(t["scores"]) == {"model", "persistence"}
    assert {"mse", "mse_normalised", "c_nino34_m"} <= set(t["scores"]["model"])
    report = (enso_model / "report.md").read_text()
    assert "persistence" in report and "c_nino34_m" in report
    assert not work_dir(enso_model).exists()  # the checkpoint folder is cleaned up


def test_existing_output_is_refused(enso_model):
    with pytest.raises(ModelDirError, match="overwrite=True"):
        fit(dict(TINY), monthly_sst(), in_len=4, out_len=3, steps=1, out_dir=enso_model, **FAST)


def test_fine_tune_from_a_model_directory(enso_model, tmp_path):
    base, _ = load_model_dir(enso_model)
    more = monthly_sst(seed=4, start="2020-01-01", absolute=True)
    out = fit(enso_model, more, in_len=4, out_len=3, steps=2, out_dir=tmp_path / "tuned", **FAST)
    card, _ = load_model_dir(out)
    assert card.training["fine_tuned"] and "model directory" in card.training["started_from"]
    assert card.contract.offset == base.contract.offset
    np.testing.assert_array_equal(card.contract.climatology, base.contract.climatology)
    with pytest.raises(TrainingError, match="fine-tuning it needs in_len=4"):
        fit(enso_model, more, in_len=5, out_len=3, steps=1, out_dir=tmp_path / "x", **FAST)


def test_radar_validation_uses_csi_m(tmp_path):
    out = fit(dict(TINY), radar_events(), valid=radar_events(n_events=2, seed=1, prefix="V"),
              in_len=3, out_len=2, steps=2, out_dir=tmp_path / "radar", **FAST)
    card, _ = load_model_dir(out)
    assert card.contract.scale == 255.0 and card.training["monitor"] == "csi_m"
    assert "csi_m" in card.training["scores"]["persistence"]


def test_config_and_module_and_json_sources(tmp_path):
    cfg = EarthformerConfig.from_official_kwargs(
        {**TINY, "input_shape": [3, 8, 8, 1], "target_shape": [2, 8, 8, 1]})
    data = radar_events(n_events=2)
    a = fit(cfg, data, in_len=3, out_len=2, steps=1, out_dir=tmp_path / "a", **FAST)
    module = Earthformer(cfg)
    b = fit(module, data, in_len=3, out_len=2, steps=1, out_dir=tmp_path / "b", **FAST)
    (tmp_path / "k.json").write_text(json.dumps(TINY))
    c = fit(tmp_path / "k.json", data, in_len=3, out_len=2, steps=1, out_dir=tmp_path / "c",
            **FAST)
    sources = [load_model_dir(p)[0].training["started_from"] for p in (a, b, c)]
    assert sources[0] == "EarthformerConfig" and sources[1] == "Earthformer module"
    assert sources[2].startswith("kwargs file")
    assert load_model_dir(b)[0].training["fine_tuned"]


def test_epochs_early_stopping_and_overwrite(tmp_path):
    out = tmp_path / "e"
    fit(dict(TINY), radar_events(n_events=2), in_len=3, out_len=2, epochs=1, out_dir=out,
        **FAST)
    card, _ = load_model_dir(out)
    assert card.training["steps"] == 3  # 2 events x 6 windows, batch 4: ceil(12 / 4)
    fit(dict(TINY), radar_events(n_events=2), valid=radar_events(2, seed=1), in_len=3, out_len=2,
        steps=20, valid_every=1, early_stopping_patience=1, lr=0.0, out_dir=out,
        overwrite=True, **FAST)
    card, _ = load_model_dir(out)
    assert card.training["stopped_early"] and card.training["steps_done"] == 2
    assert card.training["best_step"] == 1


def _weights(path):
    return load_model_dir(path)[1]


@pytest.mark.parametrize("options", [
    dict(),
    # radar: the intensity-weighted loss and random flips/turns (their draws must resume too)
    dict(loss="balanced", augment="flip_rotate"),
], ids=["plain", "augmented-balanced"])
def test_resume_gives_the_uninterrupted_weights(tmp_path, options):
    kwargs = {**TINY, "ffn_drop": 0.2, "attn_drop": 0.1}  # dropout: the RNG state matters
    if options:
        data, lengths = radar_events(n_events=3), dict(in_len=3, out_len=2)
    else:
        data, lengths = monthly_sst(), dict(in_len=4, out_len=3)
    common = dict(**lengths, steps=7, checkpoint_every=2, seed=3, **options, **FAST)
    whole = fit(dict(kwargs), data, out_dir=tmp_path / "whole", **common)

    class Interrupt(Exception):
        pass

    def stop_at_5(step, logs):
        if step == 5:
            raise Interrupt

    out = tmp_path / "resumed"
    with pytest.raises(Interrupt):
        fit(dict(kwargs), data, out_dir=out, callbacks=[stop_at_5], **common)
    checkpoint = torch.load(work_dir(out) / "checkpoint.pt", weights_only=True)
    assert checkpoint["step"] == 4 and not out.exists()
    resumed = fit(dict(kwargs), data, out_dir=out, **common)
    a, b = _weights(whole), _weights(resumed)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key  # bitwise
    curve_a = load_model_dir(whole)[0].training["loss_curve"]
    curve_b = load_model_dir(resumed)[0].training["loss_curve"]
    assert curve_a == curve_b
    if options:
        assert load_model_dir(resumed)[0].training["augment"] == "flip_rotate"


def test_resume_refuses_a_checkpoint_of_another_run(tmp_path):
    data = radar_events(n_events=2)
    out = tmp_path / "r"
    interrupted_radar_run(data, out)
    with pytest.raises(ResumeMismatchError, match="resume=False"):
        fit(dict(TINY), data, in_len=3, out_len=2, steps=4, lr=0.5, out_dir=out, **FAST)
    fit(dict(TINY), data, in_len=3, out_len=2, steps=2, resume=False, out_dir=out, **FAST)
    assert out.exists() and not work_dir(out).exists()


def test_bad_arguments(tmp_path):
    data = radar_events(n_events=2)
    with pytest.raises(TrainingError, match="exactly one of steps"):
        fit(dict(TINY), data, in_len=3, out_len=2, out_dir=tmp_path / "a", **FAST)
    with pytest.raises(TrainingError, match="in_len=0"):
        fit(dict(TINY), data, in_len=0, out_len=2, steps=1, out_dir=tmp_path / "a", **FAST)
    with pytest.raises(PrecisionError, match="fp16"):
        fit(dict(TINY), data, in_len=3, out_len=2, steps=1, device="cpu", precision="fp16",
            out_dir=tmp_path / "a", **FAST)
    with pytest.raises(NotEnoughDataError, match="26 consecutive"):
        fit(dict(TINY), data, in_len=12, out_len=14, steps=1, out_dir=tmp_path / "a", **FAST)
    assert not (tmp_path / "a").exists()


def test_a_batch_that_does_not_fit_is_refused(tmp_path, capsys):
    with pytest.raises(MemoryBudgetError, match=r"use batch_size=\d+ or less"):
        fit(dict(TINY), radar_events(n_events=2), in_len=3, out_len=2, steps=1,
            batch_size=10**9, progress=False, out_dir=tmp_path / "m")
    assert "estimated memory" in capsys.readouterr().err


def test_zoo_models(enso_model, tmp_path):
    from xearthformer import zoo
    from xearthformer.train.model_source import _from_loaded

    base = _from_loaded(zoo.load_model(str(enso_model)), "zoo model 'x'")
    card, weights = load_model_dir(enso_model)
    assert base.fine_tuning and base.contract.scale == card.contract.scale
    assert all(torch.equal(base.state_dict[k], weights[k]) for k in weights)
    names = [row["name"] for row in zoo.list_models() if row["name"] == "earthformer-demo-enso"]
    assert names, "the demo model earthformer-demo-enso ships with the package"
    data = __import__("xearthformer").tutorial.open_dataset("enso", n_years=3)
    c = zoo.load_model(names[0]).card.contract
    out = fit(names[0], data, in_len=c.in_len, out_len=c.out_len, steps=1, batch_size=2,
              progress=False, out_dir=tmp_path / "demo")
    assert load_model_dir(out)[0].training["started_from"] == "zoo model 'earthformer-demo-enso'"
