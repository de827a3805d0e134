"""MMEngine-side helpers of mmdyn: safe checkpoint loading, the temperature
annealing hook, RNG states in checkpoints (exact resumes), and CPU (gloo)
distributed training / CPU AMP support, and the command-line options the
tools share (:mod:`mmdyn.engine.cli`)."""
from .checkpoint import (ALLOWED_CHECKPOINT_GLOBALS, CheckpointDownloadError, CheckpointError,
                         CheckpointFitHook, CheckpointMismatchError, CheckpointNotFoundError,
                         CheckpointSourceError, CorruptCheckpointError, InvalidCheckpointError,
                         InvalidTemperatureError, NonFiniteCheckpointError,
                         UnsafeCheckpointError, check_checkpoint_values,
                         check_finite_checkpoint, check_state_dict_fits,
                         install_safe_checkpoint_loading, load_checkpoint_bytes,
                         load_checkpoint_file, load_checkpoint_url, read_checkpoint,
                         url_cache_path, weights_only_torch_load)
from .cli import (add_config_options, add_device_option, add_launcher_options,
                  add_partial_checkpoint_option, apply_local_rank, check_checkpoint_path,
                  check_config_path)
from .config import load_config, propagate_data_root
from .dist import (CPUAmpOptimWrapper, CPUDistributedDataParallel, cpu_model_wrapper_cfg,
                   init_cpu_dist_if_needed)
from .hooks import (ClassCountsHook, ProgressBarHook, TemperatureAnnealHook, annealed_temperature,
                    apply_legacy_temperature, model_temperatures, set_model_temperature)
from .rng import RNGStateHook, get_rng_state, set_rng_state

__all__ = ['load_config', 'propagate_data_root', 'ALLOWED_CHECKPOINT_GLOBALS', 'UnsafeCheckpointError',
           'install_safe_checkpoint_loading', 'load_checkpoint_file',
           'load_checkpoint_bytes', 'load_checkpoint_url', 'read_checkpoint',
           'weights_only_torch_load', 'CheckpointMismatchError', 'check_state_dict_fits',
           'CheckpointFitHook', 'CheckpointError', 'CheckpointNotFoundError',
           'CorruptCheckpointError', 'CheckpointSourceError', 'CheckpointDownloadError',
           'InvalidCheckpointError', 'NonFiniteCheckpointError', 'InvalidTemperatureError',
           'check_checkpoint_values', 'check_finite_checkpoint', 'url_cache_path',
           'TemperatureAnnealHook', 'ProgressBarHook', 'ClassCountsHook', 'annealed_temperature',
           'set_model_temperature', 'model_temperatures', 'apply_legacy_temperature',
           'CPUDistributedDataParallel', 'CPUAmpOptimWrapper', 'cpu_model_wrapper_cfg',
           'init_cpu_dist_if_needed', 'RNGStateHook', 'get_rng_state', 'set_rng_state',
           'add_config_options', 'add_device_option', 'add_partial_checkpoint_option',
           'add_launcher_options', 'apply_local_rank', 'check_config_path',
           'check_checkpoint_path']
