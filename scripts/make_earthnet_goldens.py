"""Golden vectors of the official EarthNet2021 Earthformer (``CuboidTransformerAuxModel``).

Made with the official code (PyPI ``earthformer==0.2.1``, installed by ``make bench-env`` with
``--no-deps``; this script also needs ``omegaconf``) and written under
``tests/data/earthnet2021/``, following the conventions of ``../shared/golden/README.md``:

* kwargs: the official script ``scripts/cuboid_transformer/earthnet_w_meso/
  train_cuboid_earthnet.py`` maps its config to constructor kwargs; its own code does it here:
  ``get_layout_config`` / ``get_model_config`` are taken from the script's source (``ast``) and
  run, the released ``earthformer_earthnet_v1.yaml`` is merged over them with OmegaConf, tiny
  overrides are applied to the merged config, and every keyword of the script's
  ``CuboidTransformerAuxModel(...)`` call is evaluated as written (``model_cfg["..."]`` or the
  pattern lists);
* weights: ``torch.manual_seed(seed_init)``; construct (official init); ``.eval()``; for every
  floating-point parameter in ``named_parameters()`` order ``p += 0.05 * randn`` from one
  generator seeded ``seed_perturb``; then (an extra step, to keep the test data small) every
  floating-point parameter is rounded to float16 precision and ``state_dict.pt`` stores it as
  float16: ``.float()`` gives back exactly the float32 weights the outputs were computed with;
* inputs: ``torch.randn(shape, generator=torch.Generator().manual_seed(seed_input))`` drawn in
  the order ``x``, ``aux_enc``, ``aux_dec``; the auxiliary inputs are on a coarser grid than the
  frames (as the meso variables are), so the model's nearest resize is exercised;
* outputs: ``model(x, aux_enc, aux_dec)`` in eval mode under ``no_grad``, in float32
  (``output.pt``) and with weights and inputs upcast to float64 (``output_fp64.pt``);
* ``manifest_earthnet_official.json``: key, shape, dtype, kind of every ``state_dict`` entry of
  the full-size released configuration (``earthformer_earthnet2021.pt``), with its kwargs.

Run: ``python scripts/make_earthnet_goldens.py`` (about a minute on 2 CPU cores). Running it
again gives bit-identical files on the same CPU type.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from _official import official_package_root  # noqa: E402  (the shim the benchmarks use)

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "tests" / "data" / "earthnet2021"
SCRIPT_DIR = "scripts/cuboid_transformer/earthnet_w_meso"

#: tiny cases: overrides of the merged config, seeds (init, perturb, input), aux grid (H, W)
CASES = {
    "earthnet_tiny": {
        "overrides": {"input_shape": [4, 16, 16, 4], "target_shape": [6, 16, 16, 4],
                      "base_units": 16, "initial_downsample_stack_conv_dim_list": [8, 16]},
        "seeds": (51, 1051, 2051), "aux_hw": (5, 7),
        "exercises": ("released config at small size: stack_conv front end and the auxiliary "
                      "encoder (2 merges of /2), 8 encoder global vectors with separate qkv, UNet "
                      "decoder with down and up cross attention ('both'), decoder temporal cuboid "
                      "of T_in=4 on T_out=6 frames (zero padded), aux resized from 5 x 7"),
    },
    "earthnet_tiny_up": {
        "overrides": {"input_shape": [3, 8, 16, 4], "target_shape": [4, 8, 16, 4],
                      "base_units": 8, "initial_downsample_stack_conv_dim_list": [4, 8],
                      "unet_dec_cross_mode": "up", "num_global_vectors": 0},
        "seeds": (52, 1052, 2052), "aux_hw": (8, 16),
        "exercises": ("the script's default cross mode 'up' (no down_cross_blocks), no global "
                      "vectors, non-square grid, aux already on the frame grid"),
    },
}


def script_mapping(root: Path):
    """(defaults function, keyword mapping) taken from the official training script's source."""
    from omegaconf import OmegaConf

    source = (root / SCRIPT_DIR / "train_cuboid_earthnet.py").read_text()
    tree = ast.parse(source)
    funcs, call = {}, None
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name in ("get_layout_config", "get_model_config"):
            funcs[node.name] = node
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                and node.func.id == "CuboidTransformerAuxModel"):
            call = node
    namespace = {"OmegaConf": OmegaConf}

    class Holder:
        pass

    for name in ("get_layout_config", "get_model_config"):
        node = funcs[name]
        node.decorator_list = []
        module = ast.Module(body=[node], type_ignores=[])
        exec(compile(ast.fix_missing_locations(module), "train_cuboid_earthnet.py", "exec"), namespace)
        setattr(Holder, name, staticmethod(namespace[name]) if name == "get_layout_config"
                else classmethod(namespace[name]))
    return Holder.get_model_config, call


def official_kwargs(root: Path, overrides: dict | None = None) -> dict:
    """The kwargs the official script passes to ``CuboidTransformerAuxModel``."""
    from omegaconf import OmegaConf

    defaults, call = script_mapping(root)
    yaml = OmegaConf.load(root / SCRIPT_DIR / "earthformer_earthnet_v1.yaml")
    merged = OmegaConf.merge(defaults(), yaml.model)
    if overrides:
        merged = OmegaConf.merge(merged, OmegaConf.create(overrides))
    model_cfg = OmegaConf.to_object(merged)
    num_blocks = len(model_cfg["enc_depth"])
    env = {"model_cfg": model_cfg,  # the script's three pattern lists, as it builds them
           "enc_attn_patterns": [model_cfg["self_pattern"]] * num_blocks,
           "dec_self_attn_patterns": [model_cfg["cross_self_pattern"]] * num_blocks,
           "dec_cross_attn_patterns": [model_cfg["cross_pattern"]] * num_blocks}
    kwargs = {}
    for kw in call.keywords:
        expr = ast.Expression(body=kw.value)
        kwargs[kw.arg] = eval(compile(expr, "train_cuboid_earthnet.py", "eval"), {}, env)
    return json.loads(json.dumps(kwargs))  # plain lists and numbers


def build(cls, kwargs: dict, seed_init: int, seed_perturb: int):
    torch.manual_seed(seed_init)
    model = cls(**kwargs).eval()
    gen = torch.Generator().manual_seed(seed_perturb)
    with torch.no_grad():
        for _, p in model.named_parameters():
            if p.is_floating_point():
                p += 0.05 * torch.randn(p.shape, generator=gen)
                p.copy_(p.half().float())  # exactly representable in the float16 file
    return model


def manifest(model: torch.nn.Module) -> list[dict]:
    params = {name for name, _ in model.named_parameters()}
    return [{"key": k, "shape": list(v.shape), "dtype": str(v.dtype).replace("torch.", ""),
             "kind": "parameter" if k in params else "buffer"} for k, v in model.state_dict().items()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    torch.set_num_threads(1)  # one reduction order for the float32 references
    root = official_package_root()
    aux = importlib.import_module("earthformer.cuboid_transformer.cuboid_transformer_unet_dec")
    cls = aux.CuboidTransformerAuxModel
    args.out.mkdir(parents=True, exist_ok=True)

    full = official_kwargs(root)
    model = cls(**full)
    entries = manifest(model)
    (args.out / "manifest_earthnet_official.json").write_text(json.dumps({
        "class": "earthformer.cuboid_transformer.cuboid_transformer_unet_dec.CuboidTransformerAuxModel",
        "source_yaml": f"{SCRIPT_DIR}/earthformer_earthnet_v1.yaml",
        "official_pretrained_checkpoint_name": "earthformer_earthnet2021.pt",
        "constructor_kwargs": full,
        "num_parameters": sum(p.numel() for p in model.parameters()),
        "num_state_dict_entries": len(entries),
        "state_dict": entries,
    }, indent=1) + "\n")
    del model

    for case, spec in CASES.items():
        kwargs = official_kwargs(root, spec["overrides"])
        seed_init, seed_perturb, seed_input = spec["seeds"]
        model = build(cls, kwargs, seed_init, seed_perturb)
        t_in, h, w, c = kwargs["input_shape"]
        t_out = kwargs["target_shape"][0]
        gen = torch.Generator().manual_seed(seed_input)
        inputs = {"x": torch.randn((2, t_in, h, w, c), generator=gen),
                  "aux_enc": torch.randn((2, t_in, *spec["aux_hw"], kwargs["auxiliary_channels"]),
                                         generator=gen),
                  "aux_dec": torch.randn((2, t_out, *spec["aux_hw"], kwargs["auxiliary_channels"]),
                                         generator=gen)}
        with torch.no_grad():
            y32 = model(**inputs)
            model64 = build(cls, kwargs, seed_init, seed_perturb).double()
            y64 = model64(**{k: v.double() for k, v in inputs.items()})
        folder = args.out / case
        folder.mkdir(exist_ok=True)
        state = {k: (v.half() if v.is_floating_point() else v) for k, v in model.state_dict().items()}
        torch.save(state, folder / "state_dict_fp16.pt")
        torch.save(inputs, folder / "inputs.pt")
        torch.save(y32, folder / "output.pt")
        torch.save(y64, folder / "output_fp64.pt")
        noise = float((y32.double() - y64).abs().max() / y64.abs().max())
        (folder / "info.json").write_text(json.dumps({
            "kwargs": kwargs, "overrides_on_top_of_yaml": spec["overrides"],
            "seed_init": seed_init, "seed_perturb": seed_perturb, "seed_input": seed_input,
            "input_order": ["x", "aux_enc", "aux_dec"], "exercises": spec["exercises"],
            "num_parameters": sum(p.numel() for p in model.parameters()),
            "numerics": {"fp32_vs_fp64_max_abs_over_absmax": noise,
                         "output_absmax": float(y64.abs().max())},
            "torch": torch.__version__,
        }, indent=1) + "\n")
        print(f"{case}: params {sum(p.numel() for p in model.parameters()):,} output "
              f"{tuple(y32.shape)} fp32 vs fp64 {noise:.2e}")
    total = sum(f.stat().st_size for f in args.out.rglob("*") if f.is_file())
    print(f"wrote {args.out} ({total / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
