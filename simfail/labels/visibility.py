"""When a camera can see a failure: per-view visible frames from geom-id segmentation.

The detectors find a failure in the physics (its onset, and a physics ``visible_frame`` such as
"the cup tilted past 45 degrees"). Whether a camera shows it is decided here, per view, from
segmentation renders of the recorded states (:class:`~simfail.render.segmentation.SegmentationRenderer`
at :data:`SEG_SIZE` x :data:`SEG_SIZE` pixels per view):

* the event's **subject** is the geoms of the bodies it names (each body with its subtree):
  the first object that is not the robot (``spill`` and ``wrong_container``: the nuts;
  ``gripper_wiping``: the pushed marks; an event that names only the robot: the robot);
* the subject is **on screen** in a view at frame ``t`` when at least :data:`MIN_PIXELS` of its
  pixels are drawn there (the z-buffer leaves only unoccluded pixels);
* the subject has **visibly changed** at ``t`` when its mask differs from the mask it would
  have at ``t`` had it stayed where it was at the reference frame (the event's onset): the
  same view of state ``t`` rendered with the subject's joints held at their reference values,
  so the camera (the wrist camera moves), the robot and every occluder are the same in both.
  Changed: mask IoU at most :data:`IOU_MAX`, or centroids :data:`SHIFT_PX` or more apart. A
  subject that would be hidden but has come into view counts as changed (IoU 0). For the
  types in :data:`HAND_ANCHORED` (subject carried at onset) the counterfactual subject moves
  rigidly with the hand, so leaving the hand is the change, not being carried;
* for **contact** events the contact is on screen when, on a frame with contact impulse between
  the robot and the subject, a robot pixel touches (8-neighbourhood) a subject pixel.

Each event type follows one rule (:data:`RULE_BY_TYPE`, default ``change``):

``change``: first frame ``t >= onset`` where the subject is on screen and visibly changed.
``contact``: as ``change``, or the contact is on screen, whichever comes first.
``state``: the failure is a state, not a motion (an object at rest in the wrong place, a task
left undone, a gripper that closed on nothing): first frame ``t >=`` the physics visible frame
where the subject is on screen.

The event's ``visible_frames`` is ``{view: frame or None}``; ``visible_in`` lists the views that
see it; ``visible_frame`` is the earliest over the views (the physics frame where no view sees
the event: ``visible_in == []``). Thresholds are stated for 64x64 views and scale with the image
(pixels with the area, shifts with the width).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Callable

import mujoco
import numpy as np

from simfail.core.episode import VIEWS, EpisodeRecord, FailureEvent
from simfail.labels.scoring import dense_reward, failure_mask

__all__ = [
    "SEG_SIZE", "MIN_PIXELS", "IOU_MAX", "SHIFT_PX", "RULE_BY_TYPE", "VisibilityQuery",
    "visibility_queries", "resolve", "shows", "with_visibility", "apply_visibility",
]

#: Side [px] of the square segmentation render of each view.
SEG_SIZE = 64
#: Pixels of the subject a 64x64 view must show for it to be on screen (0.15% of the image;
#: a 4 cm cube on the table is 13-16 px in the fixed views).
MIN_PIXELS = 6
#: Mask IoU [0, 1] against the reference at or below which the subject has visibly changed.
IOU_MAX = 0.6
#: Centroid shift [px at 64 px width] at or above which the subject has visibly changed
#: (about 2 cm at the table's centre in the fixed views).
SHIFT_PX = 1.5

#: Visibility rule of each event type; types not listed use ``change``.
RULE_BY_TYPE: dict[str, str] = {
    **{t: "contact" for t in ("collision", "fixture_bump", "gripper_wiping", "tower_knocked", "object_knocked")},
    **{t: "state" for t in (
        "incomplete", "not_settled", "handle_slip", "hard_stop", "wrong_placement", "imprecise_placement",
        "undershoot", "missed_goal", "missed_grasp", "no_release", "incomplete_pour", "incomplete_wiping",
        "marks_missed", "misplaced", "imprecise_orientation", "incomplete_rotation", "over_rotation",
        "tool_not_put_down", "shaky_motion", "misaligned_stack", "wrong_order",
        # end-of-episode verdicts (simfail.labels.detectors.VERDICT_TYPES): a task left undone
        "never_grasped", "never_touched", "goal_not_reached",
    )},
}

#: Subject bodies of event types whose named objects are not what moves (regex on body names,
#: or ``"rest"``: every named object after the first).
SUBJECT_OVERRIDE: dict[str, str] = {**{t: r"nut\d+" for t in ("spill", "wrong_container", "high_pour", "premature_pour")},
                                    "gripper_wiping": "rest"}

#: Event types whose subject is carried at onset (held, or nuts in a held cup): their unmoved
#: counterfactual moves rigidly with the hand, so the change is leaving the hand, not being
#: carried.
HAND_ANCHORED: frozenset[str] = frozenset({"drop", "tool_drop", "cup_drop", "spill", "wrong_container",
                                           "high_pour", "premature_pour"})


@dataclass(frozen=True)
class VisibilityQuery:
    """What the cameras must show for one event (frames index the episode).

    Attributes:
        rule: ``change``, ``contact`` or ``state`` (see the module docstring).
        subject: Model geom ids of the subject, sorted.
        robot: Model geom ids of the robot (the contact partner; pixels it covers are left
            out of the change test).
        start: First frame that may count.
        reference: Frame whose appearance the change test compares with.
        contact: ``(T,)`` bool, frames with contact impulse between robot and subject, or None.
        moving: ``qpos`` addresses of the joints that move the subject (its own and its
            ancestors', not the robot's): the unmoved counterfactual holds them at ``reference``.
    """

    rule: str
    subject: np.ndarray
    robot: np.ndarray
    start: int
    reference: int
    contact: np.ndarray | None = None
    moving: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    #: body the counterfactual subject is rigidly attached to (-1: the world) and the qpos
    #: addresses of the subject's free joints it moves
    anchor: int = -1
    free: tuple[int, ...] = ()

    def unmoved(self, qpos: np.ndarray, t: int, pose=None) -> np.ndarray:
        """State ``t`` with the subject held where it was at the reference frame: fixed in the
        world, or (``anchor``) fixed relative to the anchor body, whose world pose
        ``pose(state) -> (pos (3,), quat (4,))`` gives."""
        row = np.array(qpos[t], dtype=np.float64, copy=True)
        ref = qpos[self.reference]
        row[self.moving] = ref[self.moving]
        if self.anchor >= 0 and pose is not None and self.free:
            hp_r, hq_r = pose(ref)
            hp_t, hq_t = pose(qpos[t])
            inv = np.empty(4)
            mujoco.mju_negQuat(inv, hq_r)
            for a in self.free:
                rel_p, rel_q, p, q = np.empty(3), np.empty(4), np.empty(3), np.empty(4)
                mujoco.mju_rotVecQuat(rel_p, ref[a : a + 3] - hp_r, inv)
                mujoco.mju_mulQuat(rel_q, inv, ref[a + 3 : a + 7])
                mujoco.mju_rotVecQuat(p, rel_p, hq_t)
                mujoco.mju_mulQuat(q, hq_t, rel_q)
                row[a : a + 3] = hp_t + p
                row[a + 3 : a + 7] = q
        return row


def _subtree_geoms(model: mujoco.MjModel, bodies: set[int]) -> np.ndarray:
    """Geom ids of ``bodies`` and all their descendants."""
    inside = np.zeros(model.nbody, dtype=bool)
    for b in range(model.nbody):  # parents precede children in MuJoCo's body order
        inside[b] = b in bodies or (b > 0 and inside[model.body_parentid[b]])
    return np.flatnonzero(inside[model.geom_bodyid]).astype(np.int32)


def _moving_qpos(model: mujoco.MjModel, bodies: set[int], robot_bodies: set[int]) -> np.ndarray:
    """qpos addresses of the joints of ``bodies``, their subtrees and their ancestors (the
    robot's excepted)."""
    inside = np.zeros(model.nbody, dtype=bool)
    for b in range(model.nbody):  # subtrees
        inside[b] = b in bodies or (b > 0 and inside[model.body_parentid[b]])
    for b in list(bodies):  # ancestors
        p = int(model.body_parentid[b])
        while p > 0:
            inside[p] = True
            p = int(model.body_parentid[p])
    for b in robot_bodies:
        inside[b] = False
    width = {0: 7, 1: 4, 2: 1, 3: 1}
    idx = [np.arange(model.jnt_qposadr[j], model.jnt_qposadr[j] + width[int(model.jnt_type[j])])
           for j in range(model.njnt) if inside[model.jnt_bodyid[j]]]
    return np.concatenate(idx).astype(np.int64) if idx else np.zeros(0, dtype=np.int64)


def _bodies_named(model: mujoco.MjModel, name: str, robot_bodies: set[int]) -> set[int]:
    if name == "robot":
        return set(robot_bodies)
    b = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, name)
    return {b} if b >= 0 else set()


def subject_bodies(model: mujoco.MjModel, event: FailureEvent, robot_bodies: set[int]) -> set[int]:
    """Body ids whose geoms are the event's subject (see the module docstring)."""
    override = SUBJECT_OVERRIDE.get(event.type)
    if override == "rest":
        names = list(event.objects[1:])
    elif override is not None:
        pat = re.compile(override)
        return {b for b in range(model.nbody) if pat.fullmatch(model.body(b).name or "")}
    else:
        others = [n for n in event.objects if n != "robot"]
        names = others[:1] or ["robot"]
    out: set[int] = set()
    for n in names:
        out |= _bodies_named(model, n, robot_bodies)
    return out


def visibility_queries(model: mujoco.MjModel, robot_bodies, events: list[FailureEvent], trace=None) -> list[VisibilityQuery]:
    """One query per event. ``trace`` (a :class:`~simfail.labels.trace.Trace`) supplies the
    contact frames of ``contact`` events; without it those use the ``change`` test only."""
    robot = set(int(b) for b in robot_bodies)
    robot_geoms = _subtree_geoms(model, robot)
    tcp = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_SITE, "tcp")
    hand = int(model.site_bodyid[tcp]) if tcp >= 0 else -1
    out = []
    for e in events:
        rule = RULE_BY_TYPE.get(e.type, "change")
        subj = subject_bodies(model, e, robot)
        contact = None
        if rule == "contact" and trace is not None:
            names = [n for n in e.objects if n != "robot" and n in trace.entity_names]
            if names:
                contact = np.zeros(len(trace), dtype=bool)
                for n in names:
                    contact |= trace.impulse("robot", n) > 1e-4
        start = e.visible_frame if rule == "state" else e.onset_frame
        anchor = hand if e.type in HAND_ANCHORED else -1
        free = tuple(int(model.jnt_qposadr[j]) for j in range(model.njnt)
                     if model.jnt_type[j] == mujoco.mjtJoint.mjJNT_FREE and int(model.jnt_bodyid[j]) in subj)
        out.append(VisibilityQuery(rule, _subtree_geoms(model, subj), robot_geoms, int(start), int(e.onset_frame),
                                   contact, _moving_qpos(model, subj, robot), anchor, free))
    return out


def _scaled(width: int, height: int) -> tuple[int, float]:
    """(MIN_PIXELS, SHIFT_PX) for a ``width x height`` view."""
    min_px = max(1, int(np.ceil(MIN_PIXELS * width * height / (64 * 64))))
    return min_px, SHIFT_PX * width / 64


def _touches(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether a pixel of mask ``a`` (H, W) lies in the 8-neighbourhood of a pixel of ``b``."""
    grown = b.copy()
    grown[1:] |= b[:-1]
    grown[:-1] |= b[1:]
    g2 = grown.copy()
    g2[:, 1:] |= grown[:, :-1]
    g2[:, :-1] |= grown[:, 1:]
    return bool((a & g2).any())


def _centroid(mask: np.ndarray) -> np.ndarray:
    rows, cols = np.nonzero(mask)
    return np.array([rows.mean(), cols.mean()])


class _Labels:
    """Per-geom label table of one query: 1 subject, 2 robot, 0 anything else (index geom+1)."""

    def __init__(self, q: VisibilityQuery, ngeom: int):
        self.lut = np.zeros(ngeom + 1, dtype=np.uint8)
        self.lut[q.robot + 1] = 2
        self.lut[q.subject + 1] = 1  # a geom in both (an event naming the robot) is the subject

    def __call__(self, ids: np.ndarray) -> np.ndarray:
        return self.lut[ids + 1]


def shows(q: VisibilityQuery, lab: np.ndarray, unmoved: np.ndarray | None, t: int) -> bool:
    """Whether one view shows the event at frame ``t``.

    ``lab``: that view's label image at ``t`` (1 subject, 2 robot, 0 other; ``uint8 (H, W)``);
    ``unmoved``: the same view of state ``t`` with the subject held at its reference pose
    (``None`` for ``state`` queries). Camera, robot and occluders are the same in both, so
    their difference is the subject's own motion since the reference.
    """
    h, w = lab.shape
    min_px, shift_px = _scaled(w, h)
    subj = lab == 1
    if int(subj.sum()) < min_px:
        return False
    if q.rule == "state":
        return True
    a = unmoved == 1
    union = int((a | subj).sum())
    if (a & subj).sum() / union <= IOU_MAX:
        return True
    if a.any() and np.linalg.norm(_centroid(a) - _centroid(subj)) >= shift_px:
        return True
    if q.rule == "contact" and q.contact is not None and q.contact[t]:
        return _touches(subj, lab == 2)
    return False


def resolve(queries: list[VisibilityQuery], qpos: np.ndarray, ngeom: int, views: tuple[str, ...],
            segment: Callable[[np.ndarray, tuple[str, ...]], dict[str, np.ndarray]],
            pose: Callable[[np.ndarray, int], tuple[np.ndarray, np.ndarray]] | None = None) -> list[dict[str, int | None]]:
    """``[{view: first frame that view shows the event, or None}]``, one per query.

    ``qpos`` ``(T, nq)`` are the recorded states; ``segment(state, views)`` returns
    ``{view: int32 (H, W)}`` model geom ids (``-1``: none) of one state for the requested
    views. Recorded frames are segmented lazily and at most once per view, from each query's
    start until every view has seen the event (for a view that never does, to the last frame);
    ``change`` and ``contact`` queries also segment their unmoved counterfactual of each frame
    they test. ``pose(state, body)`` gives a body's world ``(pos, quat)`` (for hand-anchored
    queries).
    """
    n_frames = len(qpos)
    cache: dict[int, dict[str, np.ndarray]] = {}

    def seg(t: int, want) -> dict[str, np.ndarray]:
        have = cache.setdefault(t, {})
        missing = tuple(v for v in views if v in want and v not in have)
        if missing:
            have.update(segment(qpos[t], missing))
        return have

    out = []
    for q in queries:
        labels = _Labels(q, ngeom)
        found: dict[str, int | None] = {v: None for v in views}
        pending = [v for v in views]
        for t in range(q.start, n_frames):
            ids = seg(t, pending)
            unmoved = None
            if q.rule != "state":
                # only views where the subject is on screen need the counterfactual
                on = tuple(v for v in pending if (labels(ids[v]) == 1).sum() >= _scaled(*ids[v].shape[::-1])[0])
                body_pose = None if pose is None else (lambda state, b=q.anchor: pose(state, b))
                unmoved = segment(q.unmoved(qpos, t, body_pose), on) if on else {}
            for v in list(pending):
                lab = labels(ids[v])
                if q.rule != "state" and v not in unmoved:
                    continue
                if shows(q, lab, None if unmoved is None else labels(unmoved[v]), t):
                    found[v] = t
                    pending.remove(v)
            if not pending:
                break
        out.append(found)
    return out


def with_visibility(event: FailureEvent, frames: dict[str, int | None]) -> FailureEvent:
    """``event`` with ``visible_frames``, ``visible_in`` and ``visible_frame`` (earliest over the
    views; unchanged where no view sees it)."""
    frames = {v: (None if frames.get(v) is None else int(frames[v])) for v in VIEWS if v in frames}
    seen = tuple(v for v in frames if frames[v] is not None)
    vis = min(frames[v] for v in seen) if seen else event.visible_frame
    return replace(event, visible_frame=int(vis), visible_frames=frames, visible_in=seen)


def apply_visibility(ep: EpisodeRecord, frames: list[dict[str, int | None]]) -> None:
    """Set the camera visibility of ``ep``'s events (in order) and recompute the labels that
    depend on the visible frame: the dense ``reward`` and the ``failure`` flags. The score does
    not depend on it."""
    if len(frames) != len(ep.failures):
        raise ValueError(f"{len(frames)} visibility results for {len(ep.failures)} events")
    events = [with_visibility(e, f) for e, f in zip(ep.failures, frames)]
    ep.failures = sorted(events, key=lambda e: (e.visible_frame, e.type))
    n = ep.length
    ep.columns["reward"] = dense_reward(ep.columns["progress"], ep.failures)
    ep.columns["failure"] = failure_mask(n, ep.failures)
