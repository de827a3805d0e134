"""MMEngine-side helpers of mmdyn (checkpoint loading; hooks in later issues)."""
from .checkpoint import (ALLOWED_CHECKPOINT_GLOBALS, UnsafeCheckpointError,
                         install_safe_checkpoint_loading, load_checkpoint_file)

__all__ = ['ALLOWED_CHECKPOINT_GLOBALS', 'UnsafeCheckpointError',
           'install_safe_checkpoint_loading', 'load_checkpoint_file']
