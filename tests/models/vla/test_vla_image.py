"""Image preprocessing follows the checkpoint's preprocessor_config.json as upstream's processor does.

The reference below restates upstream's PrismaticImageProcessor.apply_transform step by step (torchvision's
functional resize on a PIL image is PIL's resize with the file's interpolation code; to_tensor is /255 in
float32; normalize subtracts and divides in float32), in numpy, independently of robot_parl's code.
"""

import json

import numpy as np
import pytest
from PIL import Image

from robot_parl.models.vla.image import ImagePreprocessor

DINO_MEAN_7B, DINO_STD_7B = [0.484375, 0.455078125, 0.40625], [0.228515625, 0.2236328125, 0.224609375]


def openvla_preprocessor_config(size=224, strategy="resize-naive", means=(DINO_MEAN_7B, [0.5] * 3),
                                stds=(DINO_STD_7B, [0.5] * 3)):
    """A preprocessor_config.json laid out as openvla-7b's (keys and nesting as upstream's save_pretrained)."""
    resize = [size, size] if strategy == "resize-naive" else size
    return {
        "auto_map": {"AutoImageProcessor": "processing_prismatic.PrismaticImageProcessor",
                     "AutoProcessor": "processing_prismatic.PrismaticProcessor"},
        "image_processor_type": "PrismaticImageProcessor", "processor_class": "PrismaticProcessor",
        "image_resize_strategy": strategy, "use_fused_vision_backbone": True,
        "input_sizes": [[3, size, size], [3, size, size]], "interpolations": ["bicubic", "bicubic"],
        "means": [list(m) for m in means], "stds": [list(s) for s in stds],
        "tvf_crop_params": [{"output_size": [size, size]}] * 2,
        "tvf_do_letterbox": strategy == "letterbox",
        "tvf_letterbox_fill": [int(x * 255) for x in means[0]] if strategy == "letterbox" else None,
        "tvf_normalize_params": [{"inplace": False, "mean": list(m), "std": list(s)} for m, s in zip(means, stds)],
        "tvf_resize_params": [{"antialias": True, "interpolation": 3, "max_size": None, "size": resize}] * 2,
    }


def upstream_reference(image: np.ndarray, config: dict) -> np.ndarray:
    img = Image.fromarray(image)
    if config["tvf_do_letterbox"]:
        w, h = img.size
        m = max(w, h)
        pw, ph = int((m - w) / 2), int((m - h) / 2)
        canvas = Image.new("RGB", (w + 2 * pw, h + 2 * ph), tuple(config["tvf_letterbox_fill"]))
        canvas.paste(img, (pw, ph))
        img = canvas
    out = []
    for resize, crop, norm in zip(config["tvf_resize_params"], config["tvf_crop_params"],
                                  config["tvf_normalize_params"]):
        size = resize["size"]
        if isinstance(size, int):  # shorter side to `size`, as torchvision
            w, h = img.size
            target = (size, int(size * h / w)) if w <= h else (int(size * w / h), size)
        else:
            target = (size[1], size[0])
        r = img.resize(target, resample=resize["interpolation"])
        th, tw = crop["output_size"]
        top, left = int(round((r.size[1] - th) / 2.0)), int(round((r.size[0] - tw) / 2.0))
        x = np.asarray(r.crop((left, top, left + tw, top + th)), np.float32).transpose(2, 0, 1) / np.float32(255.0)
        mean = np.asarray(norm["mean"], np.float32)[:, None, None]
        std = np.asarray(norm["std"], np.float32)[:, None, None]
        out.append((x - mean) / std)
    return np.concatenate(out)


@pytest.mark.parametrize("strategy", ["resize-naive", "resize-crop", "letterbox"])
def test_pixel_values_equal_upstreams_for_the_files_means(strategy):
    image = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    config = openvla_preprocessor_config(strategy=strategy)
    ours = ImagePreprocessor.from_config(config)(image)[0].numpy()
    assert ours.shape == (6, 224, 224)
    assert np.abs(ours - upstream_reference(image, config)).max() <= 1e-6


def test_the_file_wins_over_textbook_imagenet_values(tmp_path):
    image = np.random.default_rng(1).integers(0, 256, (96, 128, 3), dtype=np.uint8)
    (tmp_path / "preprocessor_config.json").write_text(json.dumps(openvla_preprocessor_config(size=56)))
    from_file = ImagePreprocessor.for_checkpoint(tmp_path, 56)(image)
    default = ImagePreprocessor.for_checkpoint(tmp_path / "missing", 56)(image)
    gap = (from_file - default).abs()
    assert 0.005 < gap[:, :3].max().item() < 0.01  # the bf16-rounded DINO values
    assert gap[:, 3:].max().item() == 0.0  # SigLIP's 0.5/0.5 agree


def test_bad_preprocessor_files_are_refused_naming_the_problem(tmp_path):
    path = tmp_path / "preprocessor_config.json"
    path.write_text(json.dumps(openvla_preprocessor_config(size=56)))
    with pytest.raises(ValueError, match="2 tower\\(s\\) at \\(56, 56\\).*224x224"):
        ImagePreprocessor.for_checkpoint(tmp_path, 224)
    bad = openvla_preprocessor_config(size=56) | {"image_resize_strategy": "stretch"}
    path.write_text(json.dumps(bad))
    with pytest.raises(ValueError, match="'stretch' is not one of"):
        ImagePreprocessor.for_checkpoint(tmp_path, 56)
    path.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        ImagePreprocessor.for_checkpoint(tmp_path, 56)
