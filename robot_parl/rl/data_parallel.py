"""Data-parallel updates over torch.distributed: a learner launched by ``torchrun --nproc-per-node K``.

Rank 0 is the learner proper: it takes in steps, owns the episode store and replay, checkpoints and publishes
weights. Every update it makes (critic, distillation, the switch to online) it first announces to the other ranks,
then broadcasts the global batch it sampled; each rank computes the loss on its equal share of the rows, the
gradients are averaged with an all-reduce, and every rank makes the same optimizer step. So the parameters stay
identical on every rank and equal a single process's on the same global batch, up to the order of floating-point
sums. Random draws inside an update (CQL's random actions, DrQ shifts, a diffusion policy's noise) are each rank's
own, for its own rows.

Why not torch's DistributedDataParallel wrapper: it averages gradients from hooks armed by one forward pass of the
wrapped module per backward, while a Cal-QL update runs the ensemble on data, optimized and random actions and the
target network before its one backward, and distillation runs the policy's own supervised step. The all-reduce
below is the one DDP makes, in one bucket. Batches travel as tensors (a JSON header with names, dtypes and shapes,
then the tensors): nothing is pickled.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterable, Mapping
from datetime import timedelta

import torch
import torch.distributed as dist

from robot_parl.models.encoders import obs_rows, unflatten_obs
from robot_parl.rl.calql import CriticBatch
from robot_parl.typed_config import require

COMMANDS = ("stop", "critic", "distill", "online")
# Ranks other than 0 wait for the next update for as long as the robot pauses (an operator's break, a reset): a
# dead rank 0 is noticed by torchrun (or the finetune supervisor), which stops the others.
WAIT = timedelta(hours=12)


class Ranks:
    """This process's place in a data-parallel learner, and the collectives the agent's updates use."""

    def __init__(self, rank: int, world: int, wire: torch.device):
        # ``wire``: where collectives move tensors (gloo: host memory; NCCL: this rank's GPU)
        self.rank, self.world, self.wire = rank, world, wire

    @classmethod
    def from_env(cls, device: str) -> Ranks | None:
        """The process group torchrun describes in the environment (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT);
        None for a plain process. NCCL for a CUDA ``device`` (each rank on GPU LOCAL_RANK), else gloo."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world == 1:
            return None
        cuda = device.startswith("cuda")
        require(not cuda or device == "cuda", "learner.device", "'cuda' under torchrun (rank r takes GPU LOCAL_RANK)",
                device)
        if cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl" if cuda else "gloo", timeout=WAIT)
        wire = torch.device("cuda", torch.cuda.current_device()) if cuda else torch.device("cpu")
        return cls(dist.get_rank(), world, wire)

    @property
    def lead(self) -> bool:
        """Whether this is rank 0, which owns the data and decides every update."""
        return self.rank == 0

    def check_batch(self, key: str, size: int) -> None:
        """Refuse a batch size that does not split into equal shares (the gradient average assumes equal rows)."""
        require(size % self.world == 0, key, f"a multiple of the {self.world} learner ranks", size)

    # what to do next ----------------------------------------------------------------------------

    def announce(self, command: str) -> None:
        """Rank 0: tell every rank the next update (one of COMMANDS)."""
        dist.broadcast(torch.tensor([COMMANDS.index(command)], device=self.wire), src=0)

    def receive(self) -> str:
        """Other ranks: wait for rank 0's next command."""
        code = torch.zeros(1, dtype=torch.long, device=self.wire)
        dist.broadcast(code, src=0)
        return COMMANDS[int(code.item())]

    # data and gradients -------------------------------------------------------------------------

    def share(self, batch: CriticBatch | None) -> CriticBatch:
        """Rank 0 gives the global batch it sampled (others None); every rank gets its own rows of it."""
        fields = [f.name for f in dataclasses.fields(CriticBatch)]
        raw = torch.zeros(0, dtype=torch.uint8)
        if self.lead:
            flat = _flatten({name: getattr(batch, name) for name in fields})
            tensors = {k: v for k, v in flat.items() if isinstance(v, torch.Tensor)}
            header = {"tensors": [[k, str(v.dtype).removeprefix("torch."), list(v.shape)] for k, v in tensors.items()],
                      "strings": {k: v for k, v in flat.items() if k not in tensors}}
            raw = torch.frombuffer(bytearray(json.dumps(header).encode()), dtype=torch.uint8)
        length = torch.tensor([raw.numel()], device=self.wire)
        dist.broadcast(length, src=0)
        raw = raw.to(self.wire) if self.lead else torch.empty(int(length), dtype=torch.uint8, device=self.wire)
        dist.broadcast(raw, src=0)
        header = json.loads(raw.cpu().numpy().tobytes())
        whole = dict(header["strings"])
        for key, dtype, shape in header["tensors"]:
            value = tensors[key].to(self.wire) if self.lead else \
                torch.empty(shape, dtype=getattr(torch, dtype), device=self.wire)
            dist.broadcast(value, src=0)
            whole[key] = value  # on the wire device: the GPU of an NCCL rank, where it trains
        tree = unflatten_obs(whole)
        rows = tree["actions"].shape[0] // self.world
        start = self.rank * rows
        return CriticBatch(**{name: obs_rows(tree[name], start, start + rows) for name in fields})

    def average_gradients(self, params: Iterable[torch.nn.Parameter]) -> None:
        """Replace each parameter's gradient by its mean over the ranks (a parameter one rank did not use counts
        as a zero gradient there)."""
        params = [p for p in params if p.requires_grad]
        if not params:
            return
        flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1).to(self.wire)
                          for p in params])
        dist.all_reduce(flat)
        flat /= self.world
        offset = 0
        for p in params:
            # a view into the reduced buffer where device and dtype match (as DDP's gradient-as-bucket-view)
            p.grad = flat[offset:offset + p.numel()].view_as(p).to(p.device, p.dtype)
            offset += p.numel()

    def broadcast_state(self, state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Rank 0's values of ``state`` (same names and shapes on every rank), as DDP starts its replicas."""
        out = {}
        for name in sorted(state):
            value = state[name].detach().to(self.wire).clone()
            dist.broadcast(value, src=0)
            out[name] = value.to(state[name].device)
        return out

    def close(self) -> None:
        dist.destroy_process_group()


def _flatten(tree: Mapping, prefix: str = "") -> dict:
    flat: dict = {}
    for key, value in tree.items():
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{prefix}{key}/"))
        elif isinstance(value, torch.Tensor):
            flat[f"{prefix}{key}"] = value.detach().contiguous()
        else:  # per-row strings (instructions)
            flat[f"{prefix}{key}"] = [str(v) for v in value]
    return flat

