"""Device choice and memory release shared by the torch-backed model backends."""

from __future__ import annotations

import gc


def resolve_device(device: str) -> str:
    """``"auto"`` means the GPU when there is one; anything else is taken as given."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def free_accelerator_memory() -> None:
    """Collect dropped models and hand cached GPU blocks back, so the next model fits."""
    gc.collect()
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()
