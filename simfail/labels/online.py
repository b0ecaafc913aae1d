"""Online labels: the task's detectors run while an episode is still being recorded.

The detectors (``task.detect``) read a whole :class:`~simfail.labels.trace.Trace`; rerunning them
after every frame costs O(T) per step and O(T^2) per episode. :class:`OnlineLabeler` reruns
them only at *checkpoints* whose spacing grows with the episode (frame ``n`` is a checkpoint
when ``n >= (1 + ratio) * previous checkpoint``, and every frame while the episode is shorter
than ``1 / ratio`` frames), so the total detection work of an episode of ``T`` frames is
``O(T / ratio)``: O(1) amortized per step. ``ratio=0`` reruns them at every frame (exact online,
O(T) per step).

What is provisional (say it to the user):

* Between checkpoints, ``events`` and ``success`` are those of the last checkpoint: an event
  whose evidence appeared at frame ``t`` is *reported* at the first checkpoint ``>= t``, at most
  ``ratio * t`` frames later (its ``onset``/``visible`` frames are the detectors' own, in the past).
* Episode-level verdicts that the detectors judge on the trace so far (``no_release`` while an
  object is still carried, ``incomplete`` / never-reached-goal before the end, placement judged
  at rest) can appear at one checkpoint and be withdrawn at a later one: they are verdicts on
  the prefix, not on the episode.
* :meth:`OnlineLabeler.final` reruns the detectors on the whole trace: the final verdict is
  exactly the offline one that a generated or rolled-out episode is written with.

Progress, by contrast, is exact and O(1) at every frame: :class:`OnlineProgress` evaluates the
task's progress on a two-frame view of the trace (frame 0 and the newest frame) with the task's
carried state (:meth:`simfail.core.task.Task.progress_at`), which equals
``task.progress(trace, layout)[-1]`` on the whole trace (tested on every task, whole episodes).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from simfail.core.episode import FailureEvent
from simfail.core.task import Layout, Task
from simfail.labels.scoring import REWARD_WEIGHT
from simfail.labels.trace import Trace

#: Default checkpoint growth: detection reruns when the trace has grown by 25 %.
DEFAULT_RATIO = 0.25


@dataclass
class OnlineVerdict:
    """The labels known at a frame: ``success`` and ``events`` as of frame ``checked_at``."""

    success: bool = False
    events: list[FailureEvent] = field(default_factory=list)
    checked_at: int = -1
    final: bool = False


class OnlineLabeler:
    """Runs ``task.detect`` at geometric checkpoints of a growing trace.

    Args:
        task, layout: The episode's task and scene layout.
        ratio: Checkpoint growth (see the module docstring); 0 = every frame.
    """

    def __init__(self, task: Task, layout: Layout, ratio: float = DEFAULT_RATIO):
        if ratio < 0:
            raise ValueError(f"ratio must be >= 0, got {ratio}")
        self.task, self.layout, self.ratio = task, layout, float(ratio)
        self.verdict = OnlineVerdict()
        #: how many times the detectors ran (for the amortized-cost test)
        self.detect_calls = 0
        self._next = 1

    def _detect(self, trace: Trace, final: bool) -> OnlineVerdict:
        self.detect_calls += 1
        success, events = self.task.detect(trace, self.layout)
        self.verdict = OnlineVerdict(bool(success), list(events), len(trace) - 1, final)
        return self.verdict

    def update(self, trace: Trace) -> OnlineVerdict:
        """The verdict after the trace's newest frame (re-detecting only at checkpoints)."""
        n = len(trace) - 1
        if n >= self._next:
            self._detect(trace, final=False)
            self._next = max(n + 1, int((1.0 + self.ratio) * n + 0.999999))
        return self.verdict

    def final(self, trace: Trace) -> OnlineVerdict:
        """The exact verdict on the whole trace (the one a dataset episode is written with)."""
        if self.verdict.final and self.verdict.checked_at == len(trace) - 1:
            return self.verdict
        return self._detect(trace, final=True)


#: Trace fields that are not per-frame lists.
_STATIC_FIELDS = ("fps", "entity_names", "object_names", "joint_index")


def frame_view(trace: Trace, frames: list[int]) -> Trace:
    """A trace holding only ``frames`` of ``trace`` (shared arrays, no copies): O(len(frames))."""
    out = Trace(trace.fps, trace.entity_names, trace.object_names, joint_index=trace.joint_index)
    for f in fields(Trace):
        if f.name not in _STATIC_FIELDS:
            seq = getattr(trace, f.name)
            setattr(out, f.name, [seq[i] for i in frames])
    return out


class OnlineProgress:
    """The task's progress at the newest frame, from frame 0, that frame and O(1) carried state.

    :meth:`update` must be called once per frame, in order (frame 0 first). Each call reads
    two frames of the trace (one at frame 0): ``frames_read`` counts them, so the cost of a
    step does not grow with the episode. The value is exactly ``task.progress(trace,
    layout)[-1]`` (see :meth:`simfail.core.task.Task.progress_at`).
    """

    def __init__(self, task: Task, layout: Layout):
        self.task, self.layout = task, layout
        self.state: dict = {}
        #: frames of the trace read so far (2 per call after frame 0)
        self.frames_read = 0
        self._frame = -1

    def update(self, trace: Trace) -> float:
        t = len(trace) - 1
        if t != self._frame + 1:
            raise ValueError(f"OnlineProgress.update must see every frame in order: expected frame "
                             f"{self._frame + 1}, the trace ends at {t}")
        self._frame = t
        view = frame_view(trace, [0] if t == 0 else [0, t])
        self.frames_read += len(view)
        return self.task.progress_at(view, self.layout, self.state)


def online_dense_reward(progress: float, events: list[FailureEvent], frame: int) -> float:
    """The failure-aware dense reward at ``frame`` as far as ``events`` are known.

    Same formula as :func:`simfail.labels.scoring.dense_reward`: ``progress`` times
    ``1 - W[cat] * severity`` per task / quality event visible by ``frame``, 0 once a safety
    event is visible. An event reported late (at a checkpoint after its visible frame) only
    lowers the rewards from its report on; penalties of episode-level verdicts that the
    detectors only reach at the end (task left incomplete, a placement judged at rest, the
    final severity of a delayed failure) land only at the final step.
    """
    factor = 1.0
    for e in events:
        if e.visible_frame > frame:
            continue
        if e.category == "safety":
            return 0.0
        factor *= 1.0 - REWARD_WEIGHT[e.category] * e.severity
    return float(min(max(progress * factor, 0.0), 1.0))
