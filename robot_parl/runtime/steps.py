"""Steps (actor -> learner messages) and episode-store frames, both ways: the actor's journal and the learner's
store hold an episode's steps in one layout (frame t: s_t's images and proprio, a_t in robot units, r_t, the N
candidates drawn at s_t, the step's stamp in seconds and, where a success classifier watched, its probability for
s_t), and a journaled episode is resent as the steps it was."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from robot_parl.data.episode_store import EpisodeInfo, EpisodeWriter, Outcome, StoreError
from robot_parl.transport.messages import Step

PROBABILITY = "success_probability"


def step_frame(step: Step, probability: bool = False) -> dict[str, np.ndarray]:
    """One step as a store frame (with ``probability``: the classifier's, in an episode one watched)."""
    frame = {f"images/{k}": v for k, v in step.images.items()}
    frame.update(proprio=step.proprio, action=step.action, reward=np.float32(step.reward),
                 timestamp=step.stamp_ns * 1e-9, candidates=step.candidates)
    if probability:
        frame[PROBABILITY] = np.float32(step.success_probability)
    return frame


def frame_step(frame: dict[str, np.ndarray], index: int, info: EpisodeInfo, actor: str) -> Step:
    """Frame ``index`` of a stored episode (its arrays in ``frame``) as the step that carried it."""
    last = index == len(info) - 1
    images = {k[len("images/"):]: v[index] for k, v in frame.items() if k.startswith("images/")}
    return Step(actor=actor, episode_id=info.episode_id, index=index,
                stamp_ns=int(round(frame["timestamp"][index] * 1e9)), images=images, proprio=frame["proprio"][index],
                action=frame["action"][index], candidates=frame["candidates"][index],
                reward=float(frame["reward"][index]),
                source="rollout" if info.source == "rollout" else "intervention",
                policy_version=info.policy_version, critic_version=info.critic_version, instruction=info.instruction,
                final=last, success=info.success and last, **(_outcome_fields(info.outcome) if last else {}),
                success_probability=float(frame[PROBABILITY][index]) if PROBABILITY in frame else -1.0,
                robot=info.robot)


def step_outcome(step: Step) -> Outcome:
    """Who gave the outcome the (final) ``step`` carries."""
    return Outcome(step.outcome_source, step.classifier_version, step.classifier_success)


def _outcome_fields(outcome: Outcome) -> dict:
    return {"outcome_source": outcome.source, "classifier_version": outcome.classifier_version,
            "classifier_success": outcome.classifier_success}


def begin_episode(writer: EpisodeWriter, first: Step) -> bool:
    """Begin the episode whose first step is ``first``; returns whether its frames keep a success classifier's
    probabilities: where one scored the first frame, and the store has room for them (stores made before do not)."""
    watched = PROBABILITY in writer.schema and first.success_probability >= 0
    writer.begin("rollout", first.instruction, first.policy_version, first.critic_version,
                 ("candidates", PROBABILITY) if watched else ("candidates",), first.episode_id, first.robot)
    return watched


def write_steps(writer: EpisodeWriter, steps: Sequence[Step], partial: bool = False) -> EpisodeInfo:
    """Commit an episode's steps (0..T, the final one holding s_T): an intervention if the operator took over any
    step; ``partial``: the actor died before its final step (no outcome). A StoreError (a frame or an outcome the
    store refuses) leaves nothing behind."""
    first = steps[0]
    watched = begin_episode(writer, first)
    intervened = any(s.source == "intervention" for s in steps)
    try:
        for step in steps:
            writer.add(step_frame(step, watched))
        return writer.end(steps[-1].success and not partial, partial,
                          source="intervention" if intervened else "rollout",
                          outcome=step_outcome(steps[-1]) if steps[-1].final else Outcome())
    except StoreError:
        writer.discard()  # nothing of a refused episode is kept; the writer is ready for the next
        raise
