"""Models in pure torch: Earthformer and the PreDiff parts (no xarray here).

>>> from xearthformer.models import Earthformer, EarthformerConfig
"""

from .alignment_readout import AttentionPool3d, AttentionReadout, QKVAttention
from .checkpoint import CheckpointError, extract_state_dict, load_official_checkpoint
from .earthformer import Earthformer
from .earthformer_aux import EarthformerAux, EarthformerAuxConfig
from .earthformer_config import EarthformerConfig
from .prediff_alignment import NoisyCuboidTransformerEncoder
from .prediff_unet import CuboidTransformerUNet
from .prediff_vae import AutoencoderKL, AutoencoderKLConfig, DiagonalGaussianDistribution
from .time_embedding import TimeEmbedLayer, TimeEmbedResBlock, timestep_embedding

__all__ = [
    "AttentionPool3d",
    "AttentionReadout",
    "AutoencoderKL",
    "AutoencoderKLConfig",
    "CheckpointError",
    "CuboidTransformerUNet",
    "DiagonalGaussianDistribution",
    "NoisyCuboidTransformerEncoder",
    "QKVAttention",
    "TimeEmbedLayer",
    "TimeEmbedResBlock",
    "timestep_embedding",
    "Earthformer",
    "EarthformerAux",
    "EarthformerAuxConfig",
    "EarthformerConfig",
    "extract_state_dict",
    "load_official_checkpoint",
]
