"""Earthformer against the golden vectors made with the official implementation.

Tolerances (golden README section 4.2): float32 outputs and gradients within 1e-4 of
``max(1, absmax(reference))``, float64 within 1e-10; state_dict keys, shapes and dtypes
exactly; relative-position indices as integers exactly. Every numerical case runs under
each attention backend (the ``backend`` fixture: reference, sdpa, auto).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from xearthformer._precision import golden_tolerance
from xearthformer.models import Earthformer, EarthformerConfig
from xearthformer.nn import CuboidCrossAttentionLayer, CuboidSelfAttentionLayer
from xearthformer.nn.cuboid import relative_position_index

TINY = ["enso_tiny", "sevir_tiny", "sevir_tiny_noglobal", "swin_tiny", "dilated_tiny", "sevir_defaults_tiny"]
MODEL_CASES = [f"tiny/{c}" for c in TINY] + ["enso_full"]
LAYER_CASES = ["self_swin_shift_global", "self_dilated_axial", "self_spatial_lg_dilated_ignorepad_global",
               "cross_shift_ntemporal2_global"]
# golden README 4.2, relative to max(1, |ref|); golden_tolerance says what each rests on
FP32_TOL, FP64_TOL = golden_tolerance(torch.float32), golden_tolerance(torch.float64)


def load(path: Path):
    return torch.load(path, weights_only=True)


def assert_close(actual: torch.Tensor, reference: torch.Tensor, tol: float, what: str) -> None:
    scale = max(1.0, reference.abs().max().item())
    err = (actual.detach() - reference).abs().max().item()
    assert actual.shape == reference.shape, f"{what}: shape {tuple(actual.shape)} != {tuple(reference.shape)}"
    assert err <= tol * scale, f"{what}: max abs error {err:.3e} > {tol:.0e} x {scale:.3g}"


def build(case_dir: Path, dtype=torch.float32) -> Earthformer:
    model = Earthformer.from_official_kwargs(json.loads((case_dir / "kwargs.json").read_text()))
    model.load_state_dict(load(case_dir / "state_dict.pt"), strict=True)
    return model.to(dtype).eval()


@pytest.mark.parametrize("case", MODEL_CASES)
def test_model_output_float32(golden_dir: Path, case: str, backend: str) -> None:
    d = golden_dir / "earthformer" / case
    model = build(d)
    with torch.no_grad():
        y = model(load(d / "input.pt"))
    assert_close(y, load(d / "output.pt"), FP32_TOL, case)
    assert_close(y.double(), load(d / "output_fp64.pt"), FP32_TOL, case + " vs fp64 reference")


@pytest.mark.parametrize("case", MODEL_CASES)
def test_model_output_float64(golden_dir: Path, case: str, backend: str) -> None:
    d = golden_dir / "earthformer" / case
    model = build(d, torch.float64)
    with torch.no_grad():
        y = model(load(d / "input.pt").double())
    assert_close(y, load(d / "output_fp64.pt"), FP64_TOL, case)


@pytest.mark.parametrize("case", MODEL_CASES)
def test_model_output_by_frame_chunks(golden_dir: Path, case: str, backend: str, monkeypatch) -> None:
    """CPU inference with the full-resolution ends run one frame at a time (the chunks
    that a SEVIR-size grid gets) reproduces the official float64 outputs."""
    import xearthformer.models.earthformer_io as io

    calls: list[int] = []
    original = io._in_frame_chunks
    monkeypatch.setattr(io, "FRAME_CHUNK_BYTES", 0)  # one frame per chunk
    monkeypatch.setattr(io, "_in_frame_chunks", lambda x, c, fn: calls.append(len(c)) or original(x, c, fn))
    d = golden_dir / "earthformer" / case
    model = build(d, torch.float64)
    with torch.no_grad():
        y = model(load(d / "input.pt").double())
    assert calls, "the initial encoder or final decoder should have run by chunks of frames"
    assert_close(y, load(d / "output_fp64.pt"), FP64_TOL, case + " by frame chunks")


@pytest.mark.parametrize("case", ["enso_tiny", "sevir_tiny"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_gradients(golden_dir: Path, case: str, dtype: torch.dtype, backend: str) -> None:
    d = golden_dir / "earthformer" / "tiny" / case
    ref = load(d / ("grads.pt" if dtype == torch.float32 else "grads_fp64.pt"))
    tol = FP32_TOL if dtype == torch.float32 else FP64_TOL
    model = build(d, dtype)
    x = load(d / "input.pt").to(dtype).requires_grad_(True)
    loss = (model(x) ** 2).sum()
    loss.backward()
    params = dict(model.named_parameters())
    assert_close(loss, ref["loss"].to(dtype), tol, "loss")
    checked = 0
    for key, grad in ref.items():
        if key == "input":
            got = x.grad
        elif key.startswith("param:"):
            got = params[key[len("param:"):]].grad
        else:
            continue
        scale = grad.abs().max().item()
        err = (got - grad).abs().max().item()
        assert err <= tol * scale, f"{case} {key}: relative gradient error {err / scale:.2e}"
        checked += 1
    assert checked == 4  # the input and three parameters


@pytest.mark.parametrize("case", MODEL_CASES)
def test_state_dict_matches_manifest(golden_dir: Path, case: str) -> None:
    d = golden_dir / "earthformer" / case
    model = Earthformer.from_official_kwargs(json.loads((d / "kwargs.json").read_text()))
    reference = load(d / "state_dict.pt")
    ours = model.state_dict()
    assert list(ours) == list(reference) or set(ours) == set(reference)
    for key, tensor in reference.items():
        assert ours[key].shape == tensor.shape, key
        assert ours[key].dtype == tensor.dtype, key
        if key.endswith("relative_position_index"):
            assert torch.equal(ours[key], tensor), f"{key}: our index differs from the official one"


@pytest.mark.parametrize("name", ["enso", "sevir"])
def test_full_size_manifests(golden_dir: Path, name: str) -> None:
    manifest = json.loads((golden_dir / "earthformer" / "official" / f"manifest_{name}_official.json").read_text())
    with torch.device("meta"):
        model = Earthformer.from_official_kwargs(manifest["constructor_kwargs"])
    ours = {k: (tuple(v.shape), str(v.dtype).replace("torch.", "")) for k, v in model.state_dict().items()}
    theirs = {e["key"]: (tuple(e["shape"]), e["dtype"].replace("torch.", "")) for e in manifest["state_dict"]}
    assert set(ours) == set(theirs), (sorted(set(ours) - set(theirs))[:5], sorted(set(theirs) - set(ours))[:5])
    assert ours == theirs
    assert sum(p.numel() for p in model.parameters()) == manifest["num_parameters"]


@pytest.mark.parametrize("case", LAYER_CASES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_single_layers(golden_dir: Path, case: str, dtype: torch.dtype, backend: str) -> None:
    d = golden_dir / "earthformer" / "layers" / case
    spec = json.loads((d / "layer.json").read_text())
    cls = CuboidCrossAttentionLayer if spec["class"].endswith("CrossAttentionLayer") else CuboidSelfAttentionLayer
    layer = cls(**spec["kwargs"])
    layer.load_state_dict(load(d / "state_dict.pt"), strict=True)
    layer = layer.to(dtype).eval()
    inputs = [t.to(dtype) for t in load(d / "inputs.pt").values()]
    ref = load(d / ("outputs.pt" if dtype == torch.float32 else "outputs_fp64.pt"))
    with torch.no_grad():
        out = layer(*inputs)
    out = out if isinstance(out, tuple) else (out,)
    assert len(out) == len(ref)
    for (name, expected), got in zip(ref.items(), out):
        assert_close(got, expected, FP32_TOL if dtype == torch.float32 else FP64_TOL, f"{case}.{name}")


def test_relative_position_index_formula(golden_dir: Path) -> None:
    sd = load(golden_dir / "earthformer" / "layers" / "self_swin_shift_global" / "state_dict.pt")
    assert torch.equal(relative_position_index((2, 4, 4)), sd["relative_position_index"])


def test_config_round_trip(golden_dir: Path) -> None:
    kwargs = json.loads((golden_dir / "earthformer" / "enso_full" / "kwargs.json").read_text())
    cfg = EarthformerConfig.from_official_kwargs(kwargs)
    assert EarthformerConfig.from_official_kwargs(cfg.to_official_kwargs()) == cfg
