"""The exceptions mmdyn raises for a checkpoint it cannot use.

Every one is a :class:`CheckpointError` with a one-line message that names the
checkpoint (its file or URL; a layer's own check names the layer), so a tool
can print ``error: <message>`` and exit instead of a traceback by catching
:class:`CheckpointError`. Each also derives from the built-in exception that
mmdyn raised before these classes existed (``RuntimeError`` for a corrupt
file, ``ValueError`` for unusable contents, ...), so older ``except`` clauses
still catch them.

The classes live here, below :mod:`mmdyn.ops`, because the layers refuse an
invalid attention temperature themselves (:class:`InvalidTemperatureError`);
:mod:`mmdyn.engine` re-exports them with its other checkpoint helpers.
"""

__all__ = ['CheckpointError', 'CheckpointNotFoundError', 'CorruptCheckpointError',
           'CheckpointSourceError', 'CheckpointDownloadError', 'InvalidCheckpointError',
           'NonFiniteCheckpointError', 'InvalidTemperatureError']


class CheckpointError(Exception):
    """Base of mmdyn's checkpoint errors (one-line message naming the checkpoint)."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """The checkpoint file does not exist."""


class CorruptCheckpointError(CheckpointError, RuntimeError):
    """The file is empty, truncated or not a torch checkpoint at all."""


class CheckpointSourceError(CheckpointError, ValueError):
    """The checkpoint source (e.g. a URL) names no file that can be loaded."""


class CheckpointDownloadError(CheckpointError, RuntimeError):
    """Downloading the checkpoint failed."""


class InvalidCheckpointError(CheckpointError, ValueError):
    """The checkpoint loads but cannot be used: it is not a dict (a list, a bare
    tensor, ...) or holds values that are not valid weights."""


class NonFiniteCheckpointError(InvalidCheckpointError):
    """The checkpoint holds NaN or infinite values.

    Attributes:
        counts: ``{key: number of non-finite values}`` of every tensor that has
            any, in state-dict order.
    """

    def __init__(self, message: str, counts=None):
        super().__init__(message)
        self.counts = dict(counts or {})


class InvalidTemperatureError(InvalidCheckpointError, RuntimeError):
    """A layer's attention temperature in the checkpoint is invalid (NaN, inf,
    0, negative or out of the layer's range); the message names the layer.
    Also a ``RuntimeError``, what ``torch.nn.Module.load_state_dict`` raises
    for a state dict it cannot load."""
