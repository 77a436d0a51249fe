"""xearthformer.diffusion: noise schedule, DDPM/DDIM samplers, knowledge control, pipeline.

Pure torch; the denoiser, autoencoder and alignment network are injected (see
:mod:`xearthformer.models`).
"""

from xearthformer.diffusion.guidance import Guidance, KnowledgeControl
from xearthformer.diffusion.pipeline import PreDiffPipeline
from xearthformer.diffusion.samplers import DDIMSampler, DDPMSampler, ReverseStep
from xearthformer.diffusion.schedule import BUFFER_NAMES, NoiseSchedule, NoiseScheduleConfig

__all__ = [
    "BUFFER_NAMES",
    "DDIMSampler",
    "DDPMSampler",
    "Guidance",
    "KnowledgeControl",
    "NoiseSchedule",
    "NoiseScheduleConfig",
    "PreDiffPipeline",
    "ReverseStep",
]
