"""Models in pure torch: Earthformer and the PreDiff parts (no xarray here).

>>> from xearthformer.models import Earthformer, EarthformerConfig
"""

from .checkpoint import CheckpointError, extract_state_dict, load_official_checkpoint
from .earthformer import Earthformer
from .earthformer_config import EarthformerConfig

__all__ = [
    "CheckpointError",
    "Earthformer",
    "EarthformerConfig",
    "extract_state_dict",
    "load_official_checkpoint",
]
