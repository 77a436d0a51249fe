"""The official method through the pipeline that ``ensemble()`` builds (issue 26 §3, §5).

No golden vector of a whole guided sampling run exists: the official PreDiff code is not on
PyPI, and ``golden/prediff`` holds the schedule, the tiny VAE / UNet / alignment net and ONE
complete guided reverse step (``sampler_step_tiny``; its README: "the full 1000-step sampling
loop [is] not covered"). So the pipeline is tested against those stored official pieces:

* the guided step of the pipeline ``_ensemble._pipeline`` builds for an official model (with
  the official defaults ``resolve_options`` picks: mean shift, DDPM, batch norm, scale 50)
  reproduces the golden ``aligned_mean`` and adds ``sigma_t * n`` with ``n`` drawn from the
  one generator, after the mean (the official ``p_sample`` order);
* a guided DDPM run over the whole official 1000-step schedule through that pipeline equals
  a loop written from the official ``p_sample_loop`` (noise first from the generator, then
  one draw per step with ``t > 0``), on stand-in networks cheap enough for 1000 steps (the
  tiny golden UNet takes about a second per step on a loaded 2-core CPU);
* the target reaches the official SEVIR-LR alignment network (built from its official
  configuration) in VIL/255 units.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch

from xearthformer import _ensemble
from xearthformer.diffusion import DDPMSampler, NoiseSchedule
from xearthformer.zoo.model_dir import InputContract

pytestmark = pytest.mark.golden


def official_card(alignment_info: dict | None = None, demo: bool = False):
    """A card like the official SEVIR-LR checkpoint's: no tuned control, not a demo."""
    contract = InputContract(
        variables=("vil",), in_len=7, out_len=6, step=10, step_units="minutes",
        spatial_dims=("y", "x"), grid_shape=(128, 128), units="1", scale=255.0,
        valid_range=(0.0, 255.0),
        alignment=alignment_info or {"quantity": "mean_future_intensity", "mu": 30.0,
                                     "sigma": 12.0, "target_units": "x/255"})
    return SimpleNamespace(training={}, demo=demo, contract=contract,
                           official_kwargs={"schedule": {"timesteps": 1000}})


def official_model(modules: dict, **card_kwargs):
    return SimpleNamespace(card=official_card(**card_kwargs), modules=modules, name="official")


def settings_for(model, **overrides) -> _ensemble.EnsembleSettings:
    opts = _ensemble.resolve_options(model, control=None, sampler=None, steps=None, norm=None,
                                     guide_scale=None)
    base = dict(members=2, kc_sigma=(1.0,), sampler=opts.sampler, steps=opts.steps, eta=1.0,
                guide_scale=opts.guide_scale, norm=opts.norm, seed=0, member_batch=2,
                control=opts.control)
    return _ensemble.EnsembleSettings(**{**base, **overrides})


def test_official_defaults_for_the_official_method():
    model = official_model({})
    opts = _ensemble.resolve_options(model, control=None, sampler=None, steps=None, norm=None,
                                     guide_scale=None)
    assert (opts.control, opts.sampler, opts.steps, opts.norm, opts.guide_scale, opts.official) == (
        "mean_shift", "ddpm", 1000, "batch", 50.0, True)
    # what the caller sets wins; DDIM-50 scales the official lambda by 1000 / 50
    ddim = _ensemble.resolve_options(model, control=None, sampler="ddim", steps=50,
                                     norm="per_sample", guide_scale=None)
    assert (ddim.sampler, ddim.norm, ddim.guide_scale) == ("ddim", "per_sample", 1000.0)
    # a demo card that tuned the clean-estimate control keeps its own defaults
    demo = official_model({}, demo=True)
    demo.card.training = {"control": "clean_estimate", "guide_scale": 1.0,
                          "sampler": {"name": "ddim", "num_steps": 50}}
    opts = _ensemble.resolve_options(demo, control=None, sampler=None, steps=20, norm=None,
                                     guide_scale=None)
    assert (opts.control, opts.sampler, opts.norm, opts.guide_scale, opts.official) == (
        "clean_estimate", "ddim", "per_sample", 1.0, False)  # a fraction: not scaled by steps
    # asking the demo model for the official method: the official lambda, per-sample norm
    opts = _ensemble.resolve_options(demo, control="mean_shift", sampler=None, steps=None,
                                     norm=None, guide_scale=None)
    assert (opts.norm, opts.guide_scale, opts.official) == ("per_sample", 50.0 * 1000 / 50, False)
    with pytest.raises(_ensemble.EnsembleOptionError, match="control='x'"):
        _ensemble.resolve_options(demo, control="x", sampler=None, steps=None, norm=None,
                                  guide_scale=None)


@pytest.mark.parametrize(("units", "expected"), [
    ("x/255", (30.0 + 2 * 12.0) / 255.0),       # the official SEVIR-LR network: mean VIL/255
    ("physical", 30.0 + 2 * 12.0),
    ("standardised", 2.0),
    ("normalised", (30.0 + 2 * 12.0 - 0.0) / 255.0),  # the contract's (x - offset) / scale
])
def test_target_units_contract(units, expected):
    info = {"quantity": "mean_future_intensity", "mu": 30.0, "sigma": 12.0, "target_units": units}
    contract = official_card(info).contract
    assert _ensemble.alignment_target(contract, 2.0) == pytest.approx(expected, rel=1e-12)
    assert _ensemble.control_target(contract, 2.0, "clean_estimate") == 2.0  # standardised
    with pytest.raises(_ensemble.EnsembleOptionError, match="target_units='VIL'"):
        _ensemble.alignment_target(official_card({**info, "target_units": "VIL"}).contract, 2.0)


def test_target_reaches_the_official_sevirlr_alignment_network_in_its_units(golden_dir):
    from xearthformer.models import NoisyCuboidTransformerEncoder

    manifest = json.loads((golden_dir / "prediff/official/manifest_alignment_official.json")
                          .read_text())
    torch.manual_seed(0)
    net = NoisyCuboidTransformerEncoder.from_official_kwargs(manifest["constructor_kwargs"]).eval()
    model = official_model({"vae": None, "denoiser": lambda z, t, c: z, "alignment": net})
    settings = settings_for(model)
    pipe = _ensemble._pipeline(model, settings, controlled=True)
    assert pipe.alignment is net and pipe.control == "mean_shift" and pipe.norm == "batch"
    target = _ensemble.control_target(model.card.contract, 2.0, settings.control)
    control = pipe.guidance(target)
    z = torch.randn(1, 6, 16, 16, 64, generator=torch.Generator().manual_seed(1))  # official latent
    t = torch.tensor([500])
    with torch.no_grad():
        pred = net(z, t).mean(dim=1)  # "b 1": mean intensity of the 6 frames, VIL/255 units
    # the violation is |F(z_t) - (mu + 2 sigma) / 255|: the target is in the network's units
    # (float32 network output, compared in float32: 1e-6 of values of order 0.1-1)
    violation = float(control.violation(z, t).detach())
    assert violation == pytest.approx(abs(float(pred) - 54.0 / 255.0), abs=1e-6)


def golden_nets(golden_dir, dtype):
    from xearthformer.models import CuboidTransformerUNet, NoisyCuboidTransformerEncoder

    tiny = golden_dir / "prediff/tiny"
    nets = []
    for cls, name in ((CuboidTransformerUNet, "unet_tiny"),
                      (NoisyCuboidTransformerEncoder, "alignment_tiny")):
        net = cls.from_official_kwargs(json.loads((tiny / name / "kwargs.json").read_text()))
        net.load_state_dict(torch.load(tiny / name / "state_dict.pt", weights_only=True))
        nets.append(net.eval().to(dtype))
    return nets


def test_pipeline_guided_step_reproduces_the_official_step(golden_dir):
    """The guided step of the pipeline ensemble() builds, on the golden step's inputs."""
    case = golden_dir / "prediff/tiny/sampler_step_tiny"
    inputs = torch.load(case / "inputs.pt", weights_only=True)
    ref = torch.load(case / "outputs_fp64.pt", weights_only=True)
    unet, align = golden_nets(golden_dir, torch.float64)
    model = official_model({"vae": None, "denoiser": unet, "alignment": align})
    pipe = _ensemble._pipeline(model, settings_for(model), controlled=True)
    assert isinstance(pipe.sampler, DDPMSampler) and pipe.guide_scale == 50.0
    zt, zc, t = inputs["zt"].double(), inputs["zc"].double(), inputs["t"]
    guidance = pipe.guidance(inputs["avg_x_gt"].double())
    with torch.no_grad():
        out = pipe.sampler.step(pipe.denoiser, zt, t, zc, guidance=guidance,
                                generator=torch.Generator().manual_seed(7))
    noise = torch.randn(zt.shape, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    sigma = torch.exp(0.5 * ref["posterior_log_variance_clipped"])
    expected = ref["aligned_mean"] + sigma * noise
    # float64 step; the alignment readout's softmax is float32 as in the official code, which
    # bounds the agreement by float32 rounding (conftest: fp64_through_fp32_softmax_tol, 1e-6)
    scale = max(1.0, float(expected.abs().max()))
    assert float((out - expected).abs().max()) / scale <= 1e-6


def test_pipeline_guided_ddpm_over_the_whole_schedule_follows_the_official_loop():
    """1000 guided DDPM steps through the pipeline == the official p_sample_loop, written out.

    Stand-in networks (cheap, differentiable, non-linear) replace the golden ones; every
    operation of one step is the golden-checked step above.
    """
    gen = torch.Generator().manual_seed(3)
    w = torch.randn(4, 4, generator=gen, dtype=torch.float64) / 4

    def denoiser(z, t, cond):  # "b t h w c", depends on t and on the condition
        return torch.tanh(z @ w + cond.mean(dim=1, keepdim=True)) * (t[:, None, None, None, None] / 1000.0)

    def align(z, t):  # "b t 1": a non-linear per-frame intensity
        return torch.sigmoid(z).mean(dim=(2, 3, 4))[..., None]

    model = official_model({"vae": None, "denoiser": denoiser, "alignment": align})
    pipe = _ensemble._pipeline(model, settings_for(model), controlled=True)
    zc = torch.randn(2, 3, 2, 3, 4, generator=gen, dtype=torch.float64)
    target = torch.tensor([[0.7], [0.3]], dtype=torch.float64)
    z_T = torch.randn(2, 2, 2, 3, 4, generator=torch.Generator().manual_seed(11), dtype=torch.float64)
    ours = pipe.sampler.sample(pipe.denoiser, z_T, zc, guidance=pipe.guidance(target),
                               generator=torch.Generator().manual_seed(12))

    # the official loop: LatentDiffusion.p_sample_loop / p_sample / aligned_mean
    schedule = NoiseSchedule()
    sampler = DDPMSampler(schedule)
    noise_gen = torch.Generator().manual_seed(12)
    z = z_T
    for step in range(999, -1, -1):
        t = torch.full((2,), step, dtype=torch.long)
        with torch.no_grad():
            out = sampler.p_mean_variance(denoiser, z, t, zc)
        with torch.enable_grad():
            z_in = z.detach().requires_grad_(True)
            violation = torch.sqrt(((align(z_in, t).mean(dim=1) - target) ** 2).sum())  # ONE norm
            (grad,) = torch.autograd.grad(violation, z_in)
        sigma = torch.exp(0.5 * out.log_variance)
        mean = out.mean - sigma * 50.0 * grad
        noise = torch.randn(z.shape, generator=noise_gen, dtype=z.dtype) if step > 0 else 0.0
        z = mean + (step > 0) * sigma * noise
    # the same float64 operations in the same order, 1000 times: rounding only (1e-10 of
    # values of order 1 leaves a 1e4 margin over float64 rounding accumulated over the steps)
    assert torch.allclose(ours, z, rtol=0, atol=1e-10)
    assert not torch.allclose(ours, sampler.sample(denoiser, z_T, zc,
                                                   generator=torch.Generator().manual_seed(12)))
