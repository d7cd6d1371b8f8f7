"""Random draws for policies, critics and replay from one seeded generator, moved to where they are used.

An agent keeps one CPU ``torch.Generator``; a draw for a tensor on another device (a VLA or a critic on CUDA) is
made on the generator's device and copied over (a few KB per draw: the noise of N candidates, CQL's random
actions, DrQ's shifts), so a seeded run draws the same numbers on every device and one generator serves all.
"""

from __future__ import annotations

import torch


def _home(generator: torch.Generator | None, device: torch.device | str) -> torch.device | str:
    return generator.device if generator is not None else device


def randn(shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device | str) -> torch.Tensor:
    """Standard normal noise of ``shape`` on ``device``."""
    return torch.randn(shape, generator=generator, device=_home(generator, device)).to(device)


def rand(shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device | str) -> torch.Tensor:
    """Uniform [0, 1) noise of ``shape`` on ``device``."""
    return torch.rand(shape, generator=generator, device=_home(generator, device)).to(device)


def randint(high: int, shape: tuple[int, ...], generator: torch.Generator | None,
            device: torch.device | str) -> torch.Tensor:
    """Integers in [0, high) of ``shape`` on ``device``."""
    return torch.randint(0, high, shape, generator=generator, device=_home(generator, device)).to(device)


def multinomial(probs: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """One index per row of ``probs`` [B, K], drawn with ``generator``: [B, 1] on the device of ``probs``."""
    home = _home(generator, probs.device)
    return torch.multinomial(probs.to(home), 1, generator=generator).to(probs.device)
