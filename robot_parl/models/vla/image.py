"""OpenVLA's image preprocessing: a naive bicubic resize, then DINOv2 and SigLIP normalizations stacked."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

_DINO_MEAN, _DINO_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
_SIGLIP_MEAN, _SIGLIP_STD = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)


def preprocess(images: np.ndarray | torch.Tensor, size: int = 224) -> torch.Tensor:
    """uint8 images [H, W, 3] or [B, H, W, 3] -> pixel_values [B, 6, size, size] (float32).

    The resize is PIL's bicubic on the uint8 image, as OpenVLA's processor does ("resize-naive").
    """
    array = images.cpu().numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    if array.ndim == 3:
        array = array[None]
    if array.ndim != 4 or array.shape[-1] != 3 or array.dtype != np.uint8:
        raise ValueError(f"images must be uint8 [H, W, 3] or [B, H, W, 3], got {array.dtype} {array.shape}")
    resized = np.stack([np.asarray(Image.fromarray(im).resize((size, size), Image.BICUBIC)) for im in array])
    x = torch.from_numpy(resized).permute(0, 3, 1, 2).float() / 255.0
    channels = []
    for mean, std in ((_DINO_MEAN, _DINO_STD), (_SIGLIP_MEAN, _SIGLIP_STD)):
        channels.append((x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1))
    return torch.cat(channels, dim=1)
