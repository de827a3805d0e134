"""Argument validation shared by every part of mmdyn (pure Python).

Each helper returns the validated (and normalised) value or raises a
``TypeError`` / ``ValueError`` whose message names the argument, the expected
kind of value and what was given. ``owner`` (optional) prefixes the message
with the class or tool that refused the value, e.g.
``'TemperatureAnnealHook: end_temperature must be a finite number > 0, got 0.0'``.

Used by the layers (:mod:`mmdyn.ops`), the datasets, the hooks, the losses and
the inference API; import from here, not from a private module.
"""
import math
from typing import Optional, Sequence, Tuple, Union

IntOrPair = Union[int, Sequence[int]]

__all__ = ['check_positive_int', 'check_choice', 'check_fraction', 'check_temperature',
           'check_positive_number', 'check_number', 'check_pair']


def _prefix(owner: Optional[str]) -> str:
    return f'{owner}: ' if owner else ''


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_real(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_positive_int(name: str, value, minimum: int = 1, owner: Optional[str] = None) -> int:
    """Return ``value`` if it is an int >= ``minimum``.

    Raises:
        TypeError: ``value`` is not an int (``bool`` is refused).
        ValueError: ``value < minimum``.
    """
    if not _is_int(value):
        raise TypeError(f'{_prefix(owner)}{name} must be an int, got {value!r}')
    if value < minimum:
        raise ValueError(f'{_prefix(owner)}{name} must be >= {minimum}, got {value}')
    return value


def check_choice(name: str, value, choices: Sequence[str], owner: Optional[str] = None) -> str:
    """Return ``value`` if it is one of ``choices``, else raise a ``ValueError``
    that lists them all."""
    if value not in choices:
        raise ValueError(f'{_prefix(owner)}unknown {name} {value!r}; expected one of '
                         f'{list(choices)}')
    return value


def check_fraction(name: str, value, owner: Optional[str] = None) -> float:
    """Return ``value`` as a float if it is a real number in (0, 1] (NaN refused)."""
    if not _is_real(value):
        raise TypeError(f'{_prefix(owner)}{name} must be a number in (0, 1], got {value!r}')
    if not 0 < value <= 1:  # also refuses NaN
        raise ValueError(f'{_prefix(owner)}{name} must be in (0, 1], got {value!r}')
    return float(value)


def check_positive_number(name: str, value, owner: Optional[str] = None,
                          coerce: bool = False) -> float:
    """Return ``value`` as a float if it is a finite real number > 0.

    Args:
        name: Argument name used in the message.
        value: The value to check.
        owner: Optional prefix of the message (class or tool name).
        coerce: Accept anything ``float()`` converts (0-d tensors, numpy
            scalars, numeric strings) instead of Python ints/floats only.

    Raises:
        TypeError: Not a number.
        ValueError: Zero, negative, NaN or infinite.
    """
    if coerce:
        try:
            number = float(value)
        except (TypeError, ValueError, RuntimeError):
            raise TypeError(f'{_prefix(owner)}{name} must be a number, got {value!r}') from None
    elif _is_real(value):
        number = float(value)
    else:
        raise TypeError(f'{_prefix(owner)}{name} must be a number, got {value!r}')
    if not math.isfinite(number) or number <= 0:
        raise ValueError(f'{_prefix(owner)}{name} must be a finite number > 0, got {value!r}')
    return number


def check_temperature(value) -> float:
    """Validate a softmax/sigmoid temperature (anything ``float()`` accepts that
    is finite and > 0)."""
    return check_positive_number('temperature', value, coerce=True)


def check_number(name: str, value, low: Optional[float] = None, high: Optional[float] = None,
                 low_open: bool = False, owner: Optional[str] = None) -> float:
    """Return ``value`` as a float if it is finite and in ``[low, high)``
    (``(low, high)`` when ``low_open``); ``None`` bounds are not checked."""
    if not _is_real(value) or not math.isfinite(value):
        raise TypeError(f'{_prefix(owner)}{name} must be a finite number, got {value!r}')
    value = float(value)
    if low is not None and (value < low or (low_open and value == low)):
        raise ValueError(f'{_prefix(owner)}{name} must be {">" if low_open else ">="} {low}, '
                         f'got {value}')
    if high is not None and value >= high:
        raise ValueError(f'{_prefix(owner)}{name} must be < {high}, got {value}')
    return value


def check_pair(name: str, value: IntOrPair, minimum: int) -> Tuple[int, int]:
    """Turn ``value`` (an int or a pair of ints) into a validated ``(h, w)`` pair of
    ints >= ``minimum`` (the form ``nn.Conv2d`` accepts for ``kernel_size``,
    ``stride``, ...)."""
    if _is_int(value):
        pair = (value, value)
    elif isinstance(value, (tuple, list)) and len(value) == 2 and all(map(_is_int, value)):
        pair = (int(value[0]), int(value[1]))
    else:
        raise TypeError(f'{name} must be an int or a pair of ints, got {value!r}')
    if min(pair) < minimum:
        raise ValueError(f'{name} must be >= {minimum}, got {value!r}')
    return pair
