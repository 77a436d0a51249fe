"""xearthformer.diffusion: noise schedule, DDPM/DDIM/DPM-Solver++ samplers, knowledge control, pipeline,
training loops.

Pure torch; the denoiser, autoencoder and alignment network are injected (see
:mod:`xearthformer.models`).
"""

from xearthformer.diffusion.dpmpp import DPMSolverSampler
from xearthformer.diffusion.guidance import (
    CleanEstimateControl,
    Guidance,
    KnowledgeControl,
)
from xearthformer.diffusion.pipeline import DecodedQuantity, PreDiffPipeline
from xearthformer.diffusion.samplers import DDIMSampler, DDPMSampler, ReverseStep
from xearthformer.diffusion.schedule import (
    BUFFER_NAMES,
    NoiseSchedule,
    NoiseScheduleConfig,
)
from xearthformer.diffusion.training import (
    TrainingDataError,
    TrainingHistory,
    seeded_init,
    standardise_latents,
    train_alignment,
    train_autoencoder,
    train_denoiser,
    window_batches,
)

__all__ = [
    "BUFFER_NAMES",
    "CleanEstimateControl",
    "DDIMSampler",
    "DDPMSampler",
    "DPMSolverSampler",
    "DecodedQuantity",
    "Guidance",
    "KnowledgeControl",
    "NoiseSchedule",
    "NoiseScheduleConfig",
    "PreDiffPipeline",
    "ReverseStep",
    "TrainingDataError",
    "TrainingHistory",
    "seeded_init",
    "standardise_latents",
    "train_alignment",
    "train_autoencoder",
    "train_denoiser",
    "window_batches",
]
