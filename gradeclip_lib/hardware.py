"""What a measurement ran on (the GPU's name, or the CPU's model and the threads torch uses), and how much memory
is free there."""

from __future__ import annotations

import platform

import psutil
import torch


def device_name(device: str) -> str:
    """The GPU's name, or the CPU's model and the threads torch uses."""
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            model = next(line.split(":", 1)[1].strip() for line in fh if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{model}, {torch.get_num_threads()} threads"


def free_memory(device: str | torch.device) -> int:
    """Bytes free for new tensors: the GPU's free memory, or the memory the operating system can give."""
    device = torch.device(device)
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    return int(psutil.virtual_memory().available)
