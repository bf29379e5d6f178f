"""The device a model runs on, from what a user typed: one check for every command and the API.

``--device`` reaches PyTorch from ``dlnet colorize``, ``dlnet serve``, ``dlnet evaluate`` and the
Python API; a name PyTorch does not know, or a GPU this machine lacks, is one
:class:`~dlnet.errors.OptionError` naming the option, never PyTorch's traceback from deep in a load.
Configs call :func:`check_device` when they are built; it imports torch only for a device named
other than the CPU (the CPU's commands start on onnxruntime, without torch).

Example:
    >>> resolve_device("cpu")
    device(type='cpu')
    >>> resolve_device("banana")
    Traceback (most recent call last):
    ...
    dlnet.errors.OptionError: device must be cpu, cuda, cuda:1, ... (a device PyTorch knows), got 'banana'
    >>> check_device(None), check_device("cpu")   # nothing to ask PyTorch
    (None, None)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dlnet.errors import OptionError

if TYPE_CHECKING:
    import torch

__all__ = ["resolve_device", "check_device"]


def check_device(device) -> None:
    """Raise :class:`~dlnet.errors.OptionError` if ``device``, a name a user gave, is not one
    this machine has (None, ``"cpu"`` and ``torch.device`` objects pass unasked)."""
    if isinstance(device, str) and device != "cpu":
        resolve_device(device)


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``device`` as a ``torch.device`` this machine has: None is CUDA where available, else the CPU.

    Raises :class:`~dlnet.errors.OptionError` (field ``device``) for a name PyTorch does not parse
    and for a device it cannot use here (no CUDA, GPU 3 of 1, no MPS), checked by placing an empty
    tensor on it: the one test every backend answers alike.
    """
    import torch

    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError):
        raise OptionError("device", f"must be cpu, cuda, cuda:1, ... (a device PyTorch knows), got {device!r}") from None
    if resolved.type != "cpu":
        try:
            torch.empty(0, device=resolved)
        except (RuntimeError, AssertionError) as e:  # (AssertionError: a build without CUDA)
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise OptionError("device", f"{device}: not available on this machine ({first})") from None
    return resolved
