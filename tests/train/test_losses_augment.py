"""fit(loss=..., augment=...): the loss values, land masking, the flips and turns, the errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from xearthformer import fit
from xearthformer._precision import reduction_error, unit_roundoff
from xearthformer.train import TrainingError
from xearthformer.train.augment import augment_batch, flip_rotate, window_generator
from xearthformer.train.checkpoint import work_dir
from xearthformer.train.errors import ResumeMismatchError
from xearthformer.train.losses import make_loss, storm_weights
from xearthformer.zoo.model_dir import load_model_dir

from .helpers import FAST, TINY, interrupted_radar_run, monthly_sst, radar_events


def _fields(seed: int = 0, shape=(2, 3, 4, 5, 1)) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g), torch.rand(shape, generator=g)


# -- loss values ----------------------------------------------------------------------------


def test_builtin_losses_against_a_hand_computation():
    pred = torch.tensor([0.0, 1.0, 2.0, -1.0]).reshape(1, 1, 2, 2, 1)
    target = torch.tensor([1.0, 1.0, 0.0, 2.0]).reshape(1, 1, 2, 2, 1)
    # errors -1, 0, 2, -3: squares 1, 0, 4, 9 (mean 3.5); absolute 1, 0, 2, 3 (mean 1.5)
    # small integers and a division by 4: exact in float32
    assert float(make_loss("mse")(pred, target)) == 3.5
    assert float(make_loss("mae")(pred, target)) == 1.5
    assert float(make_loss("mse+mae")(pred, target)) == 5.0


def test_balanced_loss_weights_by_the_physical_target():
    vil = torch.tensor([0.0, 15.9, 16.0, 73.0, 74.0, 133.0, 180.0, 181.0, 255.0])
    assert storm_weights(vil).tolist() == [1, 1, 2, 2, 5, 10, 10, 20, 20]
    # model units vil / 255; targets 10, 100, 150, 200 -> weights 1, 5, 10, 20
    target = torch.tensor([10.0, 100.0, 150.0, 200.0]).reshape(1, 1, 2, 2, 1) / 255
    pred = target + torch.tensor([0.1, -0.2, 0.3, 0.5]).reshape(1, 1, 2, 2, 1)
    err = np.array([0.1, -0.2, 0.3, 0.5])
    expected = np.mean(np.array([1, 5, 10, 20]) * (err**2 + np.abs(err)))
    loss = make_loss("balanced", offset=0.0, scale=255.0)(pred, target)
    # float32: target / 255 and target + err round (2u |pred| each way on err >= 0.1, whose
    # square and absolute value are summed), then a mean of 4 terms (gamma_5)
    u = unit_roundoff("float32")
    rel = 2 * 2 * u * float(pred.abs().max()) / np.abs(err).min() + reduction_error(5, "float32")
    assert float(loss) == pytest.approx(expected, rel=rel)
    # with offset 100 the physical targets are 110, 200, 250, 300: weights 5, 20, 20, 20
    shifted = make_loss("balanced", offset=100.0, scale=255.0)(pred, target)
    expected_shifted = np.mean(np.array([5, 20, 20, 20]) * (err**2 + np.abs(err)))
    assert float(shifted) == pytest.approx(expected_shifted, rel=rel)


@pytest.mark.parametrize("name", ["mse", "mae", "mse+mae", "balanced"])
def test_land_cells_are_left_out_of_the_loss(name):
    pred, target = _fields()
    land = np.zeros((4, 5), bool)
    land[0, :] = True
    land[2, 3] = True
    loss = make_loss(name, land_mask=land, scale=255.0)
    # errors on land change nothing
    wild = pred.clone()
    wild[:, :, torch.from_numpy(land)] = 1e6
    assert torch.equal(loss(pred, target), loss(wild, target))
    # and the mean runs over the ocean cells only
    ocean = ~land
    plain = make_loss(name, scale=255.0)
    expected = plain(pred[:, :, ocean][:, :, None], target[:, :, ocean][:, :, None])
    # the same non-negative float32 terms, averaged in another layout: 2 gamma_(n+1) relative
    n = int(pred[:, :, ocean].numel())
    torch.testing.assert_close(loss(pred, target), expected, rtol=2 * reduction_error(n + 1, "float32"),
                               atol=0)


def test_a_callable_loss_gets_no_error_on_land():
    pred, target = _fields()
    land = np.zeros((4, 5), bool)
    land[1, 1] = True
    seen = {}

    def my_loss(p, t):
        seen["land_error"] = float((p - t)[:, :, 1, 1].abs().max())
        return ((p - t) ** 2).sum()

    value = make_loss(my_loss, land_mask=land)(pred, target)
    assert seen["land_error"] == 0.0
    ocean = torch.from_numpy(~land)
    # the same non-negative float32 terms summed in another layout: 2 gamma_n relative
    n = int((pred - target)[:, :, ocean].numel())
    assert float(value) == pytest.approx(float(((pred - target)[:, :, ocean] ** 2).sum()),
                                         rel=2 * reduction_error(n, "float32"))


# -- augmentation ---------------------------------------------------------------------------


def _symmetries(a: torch.Tensor) -> list[torch.Tensor]:
    """The 8 images of a "t h w c" window under the symmetries of the square."""
    out = []
    for k in range(4):
        r = torch.rot90(a, k, dims=(1, 2))
        out += [r, torch.flip(r, dims=(2,))]
    return out


def test_flip_rotate_is_a_symmetry_of_the_square_applied_to_context_and_target_alike():
    x, y = _fields(shape=(3, 6, 6, 1))
    images_x, images_y = _symmetries(x), _symmetries(y)
    seen = set()
    for position in range(64):
        x2, y2 = flip_rotate(x, y, window_generator(5, 7, position))
        which = [i for i, im in enumerate(images_x) if torch.equal(im, x2)]
        assert len(which) == 1  # one of the 8 symmetries ...
        assert torch.equal(images_y[which[0]], y2)  # ... the same one for the target
        seen.add(which[0])
    assert seen == set(range(8))  # all of them occur


def test_flip_rotate_keeps_a_storm_a_storm():
    """A turned or mirrored radar window is radar data: same values, same intensity
    histogram, and the motion between frames turned with it (the data's symmetry)."""
    vil = torch.from_numpy(radar_events(n_events=1, n_time=5).values[0].astype(np.float32))
    x, y = vil[:3, :, :, None] / 255, vil[3:, :, :, None] / 255
    x2, y2 = flip_rotate(x, y, window_generator(0, 0, 3))
    for a, b in ((x, x2), (y, y2)):
        assert torch.equal(a.flatten().sort().values, b.flatten().sort().values)
    # a blob moving one cell east per frame moves along one grid axis in the transformed window
    blob = torch.zeros(4, 8, 8, 1)
    for t in range(4):
        blob[t, 3, 1 + t] = 1.0
    bx, by = flip_rotate(blob[:2], blob[2:], window_generator(0, 1, 0))
    track = [tuple(torch.nonzero(f[..., 0])[0].tolist()) for f in (*bx, *by)]
    steps = {(b[0] - a[0], b[1] - a[1]) for a, b in zip(track, track[1:])}
    assert len(steps) == 1 and sum(abs(v) for v in steps.pop()) == 1


def test_window_randomness_is_a_function_of_seed_step_and_position():
    x, y = _fields(shape=(4, 2, 6, 6, 1))
    whole = augment_batch(flip_rotate, x, y, seed=1, step=3, first_position=0)
    halves = [augment_batch(flip_rotate, x[i:i + 2], y[i:i + 2], seed=1, step=3,
                            first_position=i) for i in (0, 2)]
    assert torch.equal(whole[0], torch.cat([h[0] for h in halves]))
    assert torch.equal(whole[1], torch.cat([h[1] for h in halves]))
    a = torch.rand(8, generator=window_generator(1, 3, 2))
    assert torch.equal(a, torch.rand(8, generator=window_generator(1, 3, 2)))
    assert not torch.equal(a, torch.rand(8, generator=window_generator(1, 4, 2)))


# -- fit with the options -------------------------------------------------------------------


def test_fit_records_loss_and_augment(tmp_path):
    out = fit(dict(TINY), radar_events(), in_len=3, out_len=2, steps=2, loss="balanced",
              augment="flip_rotate", out_dir=tmp_path / "a", **FAST)
    card, _ = load_model_dir(out)
    assert card.training["loss"] == "balanced" and card.training["augment"] == "flip_rotate"
    assert card.training["trainer"] == "xearthformer.fit"
    assert "loss: balanced; augmentation: flip_rotate" in (out / "report.md").read_text()


def test_a_callable_loss_and_augment_are_used_and_recorded_by_name(tmp_path):
    data = radar_events(n_events=2)
    calls = []

    def squared(pred, target):
        return ((pred - target) ** 2).mean()

    def identity(x, y, generator):
        calls.append((tuple(x.shape), tuple(y.shape), isinstance(generator, torch.Generator)))
        return x, y

    a = fit(dict(TINY), data, in_len=3, out_len=2, steps=2, loss=squared, augment=identity,
            out_dir=tmp_path / "a", **FAST)
    b = fit(dict(TINY), data, in_len=3, out_len=2, steps=2, out_dir=tmp_path / "b", **FAST)
    assert calls == [((3, 8, 8, 1), (2, 8, 8, 1), True)] * 8  # 2 steps of 4 windows
    card_a, wa = load_model_dir(a)
    card_b, wb = load_model_dir(b)
    assert card_a.training["loss"].endswith("test_a_callable_loss_and_augment_are_used_and_"
                                            "recorded_by_name.<locals>.squared")
    assert card_a.training["augment"].endswith("<locals>.identity")
    assert card_b.training["loss"] == "mse" and card_b.training["augment"] is None
    assert card_a.training["loss_curve"] == card_b.training["loss_curve"]
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_ocean_only_loss_in_fit_ignores_land(tmp_path):
    sst = monthly_sst()  # one land cell
    out = fit(dict(TINY), sst, in_len=4, out_len=3, steps=1, loss="mae", out_dir=tmp_path / "s",
              **FAST)
    card, _ = load_model_dir(out)
    assert card.contract.land_mask.sum() == 1 and card.training["loss"] == "mae"


def test_loss_and_augment_are_part_of_the_settings_fingerprint(tmp_path):
    data = radar_events(n_events=2)
    out = tmp_path / "r"
    interrupted_radar_run(data, out)
    assert (work_dir(out) / "checkpoint.pt").exists()
    for option in (dict(loss="balanced"), dict(augment="flip_rotate")):
        with pytest.raises(ResumeMismatchError):
            fit(dict(TINY), data, in_len=3, out_len=2, steps=4, out_dir=out, **option, **FAST)


def test_bad_loss_and_augment_values(tmp_path):
    radar, sst = radar_events(n_events=2), monthly_sst()
    common = dict(in_len=3, out_len=2, steps=1, out_dir=tmp_path / "x", **FAST)
    with pytest.raises(TrainingError, match="loss='huber' must be one of 'mse', 'mae'"):
        fit(dict(TINY), radar, loss="huber", **common)
    with pytest.raises(TrainingError, match="augment='rotate' must be None, 'flip_rotate'"):
        fit(dict(TINY), radar, augment="rotate", **common)
    with pytest.raises(TrainingError, match="needs radar data"):
        fit(dict(TINY), sst, loss="balanced", **common)
    with pytest.raises(TrainingError, match="latitude/longitude grid"):
        fit(dict(TINY), sst, augment="flip_rotate", **common)
    with pytest.raises(TrainingError, match="needs a square grid"):
        fit(dict(TINY), radar.isel(x=slice(0, 6)), augment="flip_rotate", **common)
    with pytest.raises(TrainingError, match="must return a scalar tensor"):
        fit(dict(TINY), radar, loss=lambda p, t: (p - t) ** 2, **common)
    with pytest.raises(TrainingError, match="must return \\(x, y\\)"):
        fit(dict(TINY), radar, augment=lambda x, y, g: (x[:1], y), **common)
    assert not (tmp_path / "x").exists()
