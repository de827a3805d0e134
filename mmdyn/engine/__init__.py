"""MMEngine-side helpers of mmdyn: safe checkpoint loading, the temperature
annealing hook, and CPU (gloo) distributed training / CPU AMP support."""
from .checkpoint import (ALLOWED_CHECKPOINT_GLOBALS, UnsafeCheckpointError,
                         install_safe_checkpoint_loading, load_checkpoint_file)
from .dist import (CPUAmpOptimWrapper, CPUDistributedDataParallel, cpu_model_wrapper_cfg,
                   init_cpu_dist_if_needed)
from .hooks import (ClassCountsHook, ProgressBarHook, TemperatureAnnealHook, annealed_temperature,
                    set_model_temperature)

__all__ = ['ALLOWED_CHECKPOINT_GLOBALS', 'UnsafeCheckpointError',
           'install_safe_checkpoint_loading', 'load_checkpoint_file',
           'TemperatureAnnealHook', 'ProgressBarHook', 'ClassCountsHook', 'annealed_temperature',
           'set_model_temperature',
           'CPUDistributedDataParallel', 'CPUAmpOptimWrapper', 'cpu_model_wrapper_cfg',
           'init_cpu_dist_if_needed']
