"""OpenVLA's image preprocessing, as the checkpoint's ``preprocessor_config.json`` describes it.

Upstream's processor (PrismaticImageProcessor) applies, per vision tower: an optional letterbox pad to a
square, a resize (PIL, the file's interpolation code), a centre crop, ``/255`` and a normalization with the
file's mean and std; the towers' outputs are stacked on channels (DINOv2 then SigLIP for OpenVLA). The file
wins over any built-in value: openvla-7b's DINO means and stds are bf16-rounded ImageNet values, and using
the textbook ones would shift its pixel values by up to 0.008. A checkpoint without the file gets
:data:`DEFAULT_NORMALIZATION` (ImageNet for DINOv2, 0.5 for SigLIP) with a naive square resize.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

PREPROCESSOR_FILE = "preprocessor_config.json"
STRATEGIES = ("resize-naive", "resize-crop", "letterbox")
# (mean, std) per tower when the checkpoint has no preprocessor_config.json
DEFAULT_NORMALIZATION = (((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)), ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)))
_BICUBIC = 3  # PIL's resampling code, as torchvision's pil_modes_mapping stores it in the file


@dataclass(frozen=True)
class TowerTransform:
    """One tower's resize, crop and normalization."""

    resize: int | tuple[int, int]  # an int resizes the shorter side (torchvision's convention); a pair is (h, w)
    crop: tuple[int, int]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: int = _BICUBIC


@dataclass(frozen=True)
class ImagePreprocessor:
    """uint8 RGB images -> the VLA's pixel_values, one transform per vision tower."""

    towers: tuple[TowerTransform, ...]
    letterbox_fill: tuple[int, int, int] | None = None

    @property
    def size(self) -> tuple[int, int]:
        return self.towers[0].crop

    @classmethod
    def default(cls, size: int) -> ImagePreprocessor:
        """Naive square resize with :data:`DEFAULT_NORMALIZATION` (checkpoints without a preprocessor file)."""
        return cls(tuple(TowerTransform((size, size), (size, size), mean, std) for mean, std in DEFAULT_NORMALIZATION))

    @classmethod
    def from_config(cls, config: Mapping, source: str = PREPROCESSOR_FILE) -> ImagePreprocessor:
        """Parse a PrismaticImageProcessor config (the ``tvf_*`` parameters when present, as upstream uses them)."""
        def fail(what: str):
            raise ValueError(f"{source}: {what}")

        strategy = config.get("image_resize_strategy", "resize-naive")
        if strategy not in STRATEGIES:
            fail(f"image_resize_strategy {strategy!r} is not one of {list(STRATEGIES)}")
        sizes = config.get("input_sizes") or [[3, 224, 224]]
        means, stds = config.get("means"), config.get("stds")
        normalize = config.get("tvf_normalize_params")
        resize, crop = config.get("tvf_resize_params"), config.get("tvf_crop_params")
        n = len(sizes)
        if normalize:
            means, stds = [p["mean"] for p in normalize], [p["std"] for p in normalize]
        if not means or not stds or len(means) != n or len(stds) != n:
            fail(f"expected a mean and a std for each of the {n} input sizes, got means {means} and stds {stds}")
        towers = []
        for i, size in enumerate(sizes):
            side = int(size[-1])
            if resize:
                given = resize[i]["size"]
                size_i = tuple(int(s) for s in given) if isinstance(given, Sequence) else int(given)
                interpolation = int(resize[i].get("interpolation", _BICUBIC))
            else:
                size_i = (side, side) if strategy == "resize-naive" else side
                interpolation = _BICUBIC
            crop_i = tuple(int(s) for s in crop[i]["output_size"]) if crop else (int(size[-2]), side)
            mean, std = tuple(float(v) for v in means[i]), tuple(float(v) for v in stds[i])
            if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
                fail(f"tower {i}: expected 3 means and 3 positive stds, got {mean} and {std}")
            towers.append(TowerTransform(size_i, crop_i, mean, std, interpolation))
        if len({t.crop for t in towers}) != 1:
            fail(f"the towers crop to different sizes {[t.crop for t in towers]}; they must agree")
        fill = None
        if strategy == "letterbox":
            fill = tuple(int(v) for v in (config.get("tvf_letterbox_fill") or [int(x * 255) for x in means[0]]))
        return cls(tuple(towers), fill)

    @classmethod
    def for_checkpoint(cls, directory: str | Path, size: int, towers: int = 2) -> ImagePreprocessor:
        """The checkpoint's ``preprocessor_config.json`` if it has one, else :meth:`default`."""
        path = Path(directory) / PREPROCESSOR_FILE
        if not path.is_file():
            return cls.default(size)
        try:
            config = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: not valid JSON ({err})") from None
        out = cls.from_config(config, str(path))
        if len(out.towers) != towers or out.size != (size, size):
            raise ValueError(f"{path}: describes {len(out.towers)} tower(s) at {out.size}, but the model has "
                             f"{towers} tower(s) at {size}x{size}")
        return out

    def __call__(self, images: np.ndarray | torch.Tensor) -> torch.Tensor:
        """uint8 images [H, W, 3] or [B, H, W, 3] -> pixel_values [B, 3 x towers, S, S] (float32)."""
        array = images.cpu().numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
        if array.ndim == 3:
            array = array[None]
        if array.ndim != 4 or array.shape[-1] != 3 or array.dtype != np.uint8:
            raise ValueError(f"images must be uint8 [H, W, 3] or [B, H, W, 3], got {array.dtype} {array.shape}")
        return torch.stack([self._one(Image.fromarray(im)) for im in array])

    def _one(self, image: Image.Image) -> torch.Tensor:
        if self.letterbox_fill is not None:
            image = _letterbox(image, self.letterbox_fill)
        channels = []
        for t in self.towers:
            x = _center_crop(image.resize(_pil_size(image, t.resize), resample=t.interpolation), t.crop)
            x = torch.from_numpy(np.asarray(x, dtype=np.uint8).copy()).permute(2, 0, 1).float().div(255.0)
            channels.append((x - torch.tensor(t.mean).view(3, 1, 1)) / torch.tensor(t.std).view(3, 1, 1))
        return torch.cat(channels)


def preprocessor_config(size: int, normalization=DEFAULT_NORMALIZATION) -> dict:
    """A ``preprocessor_config.json`` for a fused two-tower checkpoint, laid out as upstream's save_pretrained
    writes it (resize-naive, bicubic); ``normalization`` = ((mean, std) per tower)."""
    means, stds = [list(m) for m, _ in normalization], [list(s) for _, s in normalization]
    return {"image_processor_type": "PrismaticImageProcessor", "processor_class": "PrismaticProcessor",
            "image_resize_strategy": "resize-naive", "use_fused_vision_backbone": True,
            "input_sizes": [[3, size, size]] * 2, "interpolations": ["bicubic"] * 2, "means": means, "stds": stds,
            "tvf_crop_params": [{"output_size": [size, size]}] * 2, "tvf_do_letterbox": False,
            "tvf_letterbox_fill": None,
            "tvf_normalize_params": [{"inplace": False, "mean": m, "std": s} for m, s in zip(means, stds)],
            "tvf_resize_params": [{"antialias": True, "interpolation": _BICUBIC, "max_size": None,
                                   "size": [size, size]}] * 2}


def _pil_size(image: Image.Image, size: int | tuple[int, int]) -> tuple[int, int]:
    """PIL's (w, h) for torchvision's resize ``size``: (h, w), or the shorter side's length."""
    if not isinstance(size, int):
        return size[1], size[0]
    w, h = image.size
    short, long = (w, h) if w <= h else (h, w)
    new_long = int(size * long / short)
    return (size, new_long) if w <= h else (new_long, size)


def _center_crop(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    th, tw = size
    w, h = image.size
    if (w, h) == (tw, th):
        return image
    if w < tw or h < th:
        raise ValueError(f"cannot centre-crop a {w}x{h} image to {tw}x{th}")
    top, left = int(round((h - th) / 2.0)), int(round((w - tw) / 2.0))
    return image.crop((left, top, left + tw, top + th))


def _letterbox(image: Image.Image, fill: tuple[int, int, int]) -> Image.Image:
    """Pad to a square with a symmetric border of ``fill`` (upstream pads int((max - side) / 2) each side)."""
    w, h = image.size
    side = max(w, h)
    pad_w, pad_h = int((side - w) / 2), int((side - h) / 2)
    out = Image.new("RGB", (w + 2 * pad_w, h + 2 * pad_h), fill)
    out.paste(image, (pad_w, pad_h))
    return out
