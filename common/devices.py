"""The one place that turns a configured device string into a torch device."""
from __future__ import annotations

import re

from .errors import UserError

_DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?")


def resolve_device(device: str, key: str) -> str:
    """auto | cpu | cuda | cuda:N -> a concrete device; anything else is a
    one-line UserError naming the config key, as is cuda without a GPU."""
    if not isinstance(device, str) or not _DEVICE.fullmatch(device):
        raise UserError(f"{key}: {device!r} is not one of auto, cpu, cuda, cuda:N")
    import torch
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"{key}={device}: no CUDA device is visible")
    return device
