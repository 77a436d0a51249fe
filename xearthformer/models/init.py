"""The official initialisation (only matters when training from scratch)."""

from __future__ import annotations

from torch import nn

from ..nn.layers import PosEmbed


def initialise_earthformer(model: nn.Module) -> None:
    """Kaiming-normal Linear (fan_in, linear) and Conv (a=0.1, fan_out) weights, zero biases,
    norms (1, 0), trunc-normal(0.02) embeddings, bias tables and global vectors."""
    for module in model.modules():
        if isinstance(module, nn.Linear):
            nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="linear")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, (nn.Conv2d, nn.Conv3d)):
            nn.init.kaiming_normal_(module.weight, a=0.1, mode="fan_out", nonlinearity="leaky_relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, (nn.LayerNorm, nn.GroupNorm)) and module.weight is not None:
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, PosEmbed):
            for emb in module.children():
                nn.init.trunc_normal_(emb.weight, std=0.02)
    for name, param in model.named_parameters():
        if name.endswith("relative_position_bias_table") or name == "init_global_vectors":
            nn.init.trunc_normal_(param, std=0.02)
