"""The ``recovered`` event: a transient failure that the robot repairs (docs/recovery.md).

One rule, for every task (applied to every :meth:`Task.detect` result, see
:mod:`simfail.core.task`), read from the simulator state only:

1. a *setback* is an event of a type in :data:`TRANSIENT_TYPES` (the object left the hand or
   was never taken: ``drop``, ``missed_grasp``, ``tool_drop``, ``cup_drop``, ``handle_slip``);
2. it is *repaired* when the robot holds its object again (both finger pads on it with the
   gripper commanded closed, :func:`~simfail.labels.detectors.grasped`) after the setback's
   irreversible frame;
3. the episode *recovers* when it ends in success (the task's own verdict) and carries at least
   one repaired setback. It then gets one ``recovered`` event, category ``quality``:

   - onset = irreversible = visible = the *recovery frame* ``r``: the first frame after the
     last repair's re-grasp from which the task's progress stays within
     :data:`PROGRESS_TOL` of its final value to the end (where the physics shows the task
     achieved again);
   - severity ``0.2 + 0.8 * (r - s) / T`` with ``s`` the first repaired setback's onset and
     ``T`` the episode's frame count: the share of the episode spent repairing (a repair of a
     few frames costs about 0.2, one that takes the whole episode 1).

The setbacks keep their own events, frames and categories (a drop is still labelled where it
happened). Scoring (:mod:`simfail.labels.scoring`) is unchanged: a success scores
``100 - 25 * severity`` for the ``recovered`` quality event (75 to 95) minus the other quality
and safety penalties, so a recovered episode ranks below the clean expert (100) and above the
unrecovered failure (at most 60). A drop that lands in the goal by luck, with no re-grasp, is
not a recovery.

Causality: ``r`` comes after the re-grasp, which comes after the setback's irreversible frame,
so a variant equal to its source up to frame ``d`` gets no ``recovered`` event before ``d``.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from simfail.core.episode import FailureEvent
from simfail.labels import detectors as det

#: Event types a policy can repair by taking the object again.
TRANSIENT_TYPES = ("drop", "missed_grasp", "tool_drop", "cup_drop", "handle_slip")
#: Progress within this of its final value counts as the task achieved (progress in [0, 1]).
PROGRESS_TOL = 0.02
#: Severity of the quickest recovery.
MIN_SEVERITY = 0.2


def repaired_setbacks(trace, events: list[FailureEvent]) -> list[tuple[FailureEvent, int]]:
    """``(setback, frame of the re-grasp)`` for every setback of ``events`` whose object the
    robot holds again after the setback's irreversible frame (rules 1 and 2)."""
    out: list[tuple[FailureEvent, int]] = []
    names = set(trace.object_names)
    for e in events:
        if e.type not in TRANSIENT_TYPES:
            continue
        obj = next((o for o in e.objects if o in names), None)
        if obj is None:
            continue
        again = det.first_index(det.grasped(trace, obj), e.irreversible_frame + 1)
        if again is not None:
            out.append((e, again))
    return out


def recovery_events(trace, layout, success: bool, events: list[FailureEvent],
                    progress: np.ndarray | Callable[[], np.ndarray]) -> list[FailureEvent]:
    """The ``recovered`` event of an episode (a list of zero or one; see the module docstring).

    ``progress`` is the task's (T,) progress or a function returning it (called only when a
    setback was repaired)."""
    if not success or any(e.type == "recovered" for e in events):
        return []
    repaired = repaired_setbacks(trace, events)
    if not repaired:
        return []
    p = np.asarray(progress() if callable(progress) else progress, dtype=np.float64)
    start = max(a for _, a in repaired)
    ok = p >= p[-1] - PROGRESS_TOL
    # the first frame >= start from which ok holds to the end
    bad = np.flatnonzero(~ok[start:])
    r = int(start + bad[-1] + 1) if bad.size else int(start)
    r = min(r, len(p) - 1)
    s = min(e.onset_frame for e, _ in repaired)
    took = (r - s) / trace.fps
    sev = float(np.clip(MIN_SEVERITY + (1.0 - MIN_SEVERITY) * (r - s) / len(p), MIN_SEVERITY, 1.0))
    objs = tuple(dict.fromkeys(o for e, _ in repaired for o in e.objects))
    kinds = ", ".join(sorted({e.type.replace("_", " ") for e, _ in repaired}))
    label = det.object_label(layout, objs[0])
    return [FailureEvent(
        "recovered", "quality", r, r, r, sev, objs,
        f"after the {kinds} the robot takes the {label} again and the task is achieved {took:.1f} s after the setback",
        {"recovery_s": float(took), "setbacks": float(len(repaired)),
         "regrasp_frame": float(start), "final_progress": float(p[-1])},
    )]
