"""Running MMEngine 0.10.7 without CUDA: gloo distributed training and CPU AMP.

MMEngine's stock distributed path assumes GPUs:

* ``mmengine.dist.utils._init_dist_pytorch`` calls ``torch.cuda.set_device``
  unconditionally, which fails on a machine without CUDA, so setting
  ``env_cfg.dist_cfg.backend='gloo'`` alone is not enough;
* ``Runner.wrap_model`` passes ``device_ids=[LOCAL_RANK]`` to
  ``DistributedDataParallel``, which torch rejects for a CPU module.

:func:`init_cpu_dist_if_needed` initialises a gloo process group from the
launcher's environment *before* the Runner is built (``Runner.setup_env`` only
calls ``init_dist`` when ``torch.distributed`` is not initialised yet, so
MMEngine's CUDA-only init is skipped), and :class:`CPUDistributedDataParallel`
builds DDP with ``device_ids=None`` for CPU modules.

``AmpOptimWrapper`` asserts that a GPU/NPU/MLU is present; on CPU
:class:`CPUAmpOptimWrapper` runs the forward under ``torch.autocast('cpu',
dtype=torch.bfloat16)`` instead (CPU autocast supports bfloat16 only through
MMEngine's ``autocast``; bfloat16 has float32's range and needs no loss
scaling).

With CUDA available none of this is used: the tools keep MMEngine's stock path.

Timeouts (a node that dies or stops answering): a collective operation (the
gradient all-reduce, the gathers of the RNG states and of validation results)
waits at most ``env_cfg.dist_cfg.timeout`` seconds for the other ranks
(:data:`DEFAULT_TIMEOUT_S`, torch's own gloo default, made explicit here; set
it with ``--cfg-options env_cfg.dist_cfg.timeout=SECONDS``), then raises on
every rank that is still alive. A rank that is killed closes its connections,
so its peers fail at their next collective without waiting for the timeout
(gloo: ``Connection closed by peer``). The value is checked here on the CUDA
path too, where MMEngine passes it to ``init_process_group`` itself.
"""
import math
import os
import subprocess
from contextlib import contextmanager
from datetime import timedelta
from typing import Optional

import torch
import torch.distributed as torch_dist
from mmengine.model.wrappers import MMDistributedDataParallel
from mmengine.optim import OptimWrapper
from mmengine.registry import MODEL_WRAPPERS, OPTIM_WRAPPERS

LAUNCHERS = ('none', 'pytorch', 'slurm', 'mpi')

#: Seconds a collective operation of the CPU (gloo) process group waits for the
#: other ranks before it fails, unless ``env_cfg.dist_cfg.timeout`` says otherwise
#: (torch's default for gloo, 30 minutes).
DEFAULT_TIMEOUT_S = 1800.0


def _require_env(launcher: str, *names: str) -> None:
    missing = [name for name in names if name not in os.environ]
    if missing:
        raise RuntimeError(
            f'launcher={launcher!r} needs the environment variables {", ".join(missing)} '
            '(set by torchrun / tools/dist_train.sh, srun or mpirun); they are missing. '
            "Use --launcher none for a single process.")


def _env_from_launcher(launcher: str) -> None:
    """Fill RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT for ``env://``."""
    if launcher == 'pytorch':
        _require_env(launcher, 'RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT')
        os.environ.setdefault('LOCAL_RANK', '0')
    elif launcher == 'slurm':
        _require_env(launcher, 'SLURM_PROCID', 'SLURM_NTASKS', 'SLURM_NODELIST')
        os.environ['RANK'] = os.environ['SLURM_PROCID']
        os.environ['WORLD_SIZE'] = os.environ['SLURM_NTASKS']
        os.environ['LOCAL_RANK'] = os.environ.get('SLURM_LOCALID', '0')
        os.environ.setdefault('MASTER_PORT', '29500')
        if 'MASTER_ADDR' not in os.environ:
            os.environ['MASTER_ADDR'] = _first_slurm_host(os.environ['SLURM_NODELIST'])
    elif launcher == 'mpi':
        _require_env(launcher, 'OMPI_COMM_WORLD_RANK', 'OMPI_COMM_WORLD_SIZE')
        os.environ['RANK'] = os.environ['OMPI_COMM_WORLD_RANK']
        os.environ['WORLD_SIZE'] = os.environ['OMPI_COMM_WORLD_SIZE']
        os.environ['LOCAL_RANK'] = os.environ.get('OMPI_COMM_WORLD_LOCAL_RANK', '0')
        os.environ.setdefault('MASTER_ADDR', '127.0.0.1')
        os.environ.setdefault('MASTER_PORT', '29500')


def _first_slurm_host(nodelist: str) -> str:
    """The first host of a Slurm node list (``scontrol show hostnames``), the
    rendezvous address of a ``--launcher slurm`` run without ``MASTER_ADDR``."""
    command = ['scontrol', 'show', 'hostnames', nodelist]
    hint = 'or set MASTER_ADDR to the first node of the job'
    try:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise RuntimeError(f'launcher=\'slurm\': cannot run {" ".join(command)} to find the '
                           f'first node of SLURM_NODELIST ({err}); {hint}') from None
    hosts = proc.stdout.split()
    if proc.returncode != 0 or not hosts:
        why = (proc.stderr.strip().splitlines() or ['no host names'])[-1]
        raise RuntimeError(f'launcher=\'slurm\': {" ".join(command)} failed '
                           f'(exit status {proc.returncode}: {why}); {hint}')
    return hosts[0]


def dist_timeout(cfg=None) -> float:
    """The collective timeout in seconds: ``cfg.env_cfg.dist_cfg.timeout`` or
    :data:`DEFAULT_TIMEOUT_S`.

    Args:
        cfg: Optional MMEngine config (or dict).

    Returns:
        A positive finite number of seconds.

    Raises:
        ValueError: The configured value is not a positive finite number.
    """
    env_cfg = (cfg or {}).get('env_cfg') or {}
    value = (env_cfg.get('dist_cfg') or {}).get('timeout')
    if value is None:
        return DEFAULT_TIMEOUT_S
    try:
        seconds = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError):
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds > 0):
        raise ValueError('env_cfg.dist_cfg.timeout must be a positive number of seconds '
                         f'(how long a collective waits for the other ranks), got {value!r}')
    return seconds


def init_cpu_dist_if_needed(launcher: str, cfg=None) -> bool:
    """Initialise a gloo process group when running distributed without CUDA.

    Must be called before the Runner is built. Does nothing for
    ``launcher='none'`` or when CUDA is available (MMEngine's stock path then
    initialises NCCL itself).

    Args:
        launcher: ``'none'``, ``'pytorch'``, ``'slurm'`` or ``'mpi'``.
        cfg: Optional MMEngine config; its ``env_cfg.dist_cfg.backend`` is set
            to ``'gloo'`` and its ``env_cfg.dist_cfg.timeout`` (seconds,
            :func:`dist_timeout`; default :data:`DEFAULT_TIMEOUT_S`) bounds
            every collective operation. The timeout is checked on the CUDA
            path too (MMEngine applies it there).

    Returns:
        True when this call (or an earlier one) left a CPU gloo process group
        initialised, False when the stock path applies.

    Raises:
        ValueError: Unknown launcher, or an invalid ``env_cfg.dist_cfg.timeout``.
        RuntimeError: The launcher's environment variables are missing.
    """
    if launcher not in LAUNCHERS:
        raise ValueError(f'unknown launcher {launcher!r}; expected one of {list(LAUNCHERS)}')
    if launcher == 'none':
        return False
    timeout = dist_timeout(cfg)
    if cfg is not None and ((cfg.get('env_cfg') or {}).get('dist_cfg') or {}).get('timeout'):
        cfg['env_cfg']['dist_cfg']['timeout'] = timeout  # a number for MMEngine's init_dist
    if torch.cuda.is_available():
        return False
    if cfg is not None:
        env_cfg = cfg.setdefault('env_cfg', {})
        dist_cfg = env_cfg.setdefault('dist_cfg', {})
        dist_cfg['backend'] = 'gloo'
    if torch_dist.is_available() and torch_dist.is_initialized():
        backend = torch_dist.get_backend()
        if backend != 'gloo':
            raise RuntimeError(f'a {backend!r} process group is already initialised; '
                               'CPU distributed training needs gloo')
        return True
    _env_from_launcher(launcher)
    torch_dist.init_process_group(backend='gloo', init_method='env://',
                                  rank=int(os.environ['RANK']),
                                  world_size=int(os.environ['WORLD_SIZE']),
                                  timeout=timedelta(seconds=timeout))
    return True


def cpu_model_wrapper_cfg(cfg) -> dict:
    """The ``model_wrapper_cfg`` for CPU distributed training of ``cfg``.

    Keeps the options of an existing ``MMDistributedDataParallel`` wrapper
    config (or ``find_unused_parameters`` from the top level of the config)
    and switches its type to :class:`CPUDistributedDataParallel`.

    Raises:
        ValueError: The config asks for another wrapper type (e.g. FSDP),
            which this CPU path does not handle.
    """
    wrapper = dict(cfg.get('model_wrapper_cfg') or {})
    kind = wrapper.get('type', 'MMDistributedDataParallel')
    if kind not in ('MMDistributedDataParallel', 'CPUDistributedDataParallel'):
        raise ValueError(f'model_wrapper_cfg type {kind!r} is not supported for CPU '
                         'distributed training; use MMDistributedDataParallel')
    wrapper['type'] = 'CPUDistributedDataParallel'
    wrapper.setdefault('broadcast_buffers', False)
    wrapper.setdefault('find_unused_parameters', cfg.get('find_unused_parameters', False))
    return wrapper


@MODEL_WRAPPERS.register_module()
class CPUDistributedDataParallel(MMDistributedDataParallel):
    """``MMDistributedDataParallel`` that also works for CPU modules (gloo).

    ``Runner.wrap_model`` always passes ``device_ids=[LOCAL_RANK]``; torch's DDP
    requires ``device_ids=None`` for a module on the CPU, so it is dropped
    (with ``output_device``) when every parameter and buffer of ``module`` is
    on the CPU. For a GPU module the arguments are passed through unchanged.

    Args:
        module: The model to wrap.
        detect_anomalous_params: As ``MMDistributedDataParallel``.
        **kwargs: Passed to ``torch.nn.parallel.DistributedDataParallel``.
    """

    def __init__(self, module: torch.nn.Module, detect_anomalous_params: bool = False,
                 **kwargs):
        tensors = list(module.parameters()) + list(module.buffers())
        if all(t.device.type == 'cpu' for t in tensors):
            kwargs['device_ids'] = None
            kwargs['output_device'] = None
        super().__init__(module=module, detect_anomalous_params=detect_anomalous_params,
                         **kwargs)


@OPTIM_WRAPPERS.register_module()
class CPUAmpOptimWrapper(OptimWrapper):
    """Mixed-precision training on CPU: forward under bfloat16 autocast.

    MMEngine's ``AmpOptimWrapper`` refuses to run without an accelerator and
    CPU autocast supports only bfloat16, which needs no loss scaling; so this
    wrapper is a plain :class:`~mmengine.optim.OptimWrapper` whose
    ``optim_context`` adds ``autocast(device_type='cpu', dtype=bfloat16)``.
    ``tools/train.py --amp`` picks it when CUDA is unavailable.

    Args:
        dtype: Autocast dtype; only ``'bfloat16'``/``torch.bfloat16`` is
            accepted. Default: ``'bfloat16'``.
        **kwargs: Passed to :class:`~mmengine.optim.OptimWrapper`
            (``loss_scale`` is accepted and ignored for config compatibility
            with ``AmpOptimWrapper``).
    """

    def __init__(self, dtype='bfloat16', loss_scale: Optional[object] = None, **kwargs):
        if isinstance(dtype, str):
            dtype = getattr(torch, dtype, None)
        if dtype != torch.bfloat16:
            raise ValueError('CPUAmpOptimWrapper: CPU autocast supports only bfloat16, '
                             f'got dtype={dtype!r}')
        super().__init__(**kwargs)
        self.cast_dtype = dtype

    @contextmanager
    def optim_context(self, model: torch.nn.Module):
        """Gradient-accumulation context of the parent plus CPU bf16 autocast."""
        from mmengine.runner.amp import autocast
        with super().optim_context(model), autocast(device_type='cpu',
                                                    dtype=self.cast_dtype):
            yield
