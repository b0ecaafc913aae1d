"""Reader and consistency checker of simfail datasets (LeRobot v3.0 layout + simfail columns)."""

from __future__ import annotations

import json
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from simfail.core.episode import FailureEvent, Preference, failures_from_json, strict_preferences
from simfail.dataset import layout as L
from simfail.dataset.video import VideoCodecError, decode_frames, frame_times
from simfail.errors import DatasetFormatError, read_json

__all__ = ["SimfailDataset"]

_REQUIRED_INFO = (
    "codebase_version", "fps", "features", "total_episodes", "total_frames", "total_tasks",
    "chunks_size", "data_path", "video_path",
)
_TOL = 1e-4  # seconds, LeRobot's default tolerance between requested and decoded frame times


def _to_numpy(col: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A column as numpy: ``(T,)`` for scalars, ``(T, D)`` for fixed-size lists."""
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    if pa.types.is_fixed_size_list(arr.type):
        width = arr.type.list_size
        return arr.flatten().to_numpy(zero_copy_only=False).reshape(-1, width)
    if pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type):
        return np.asarray(arr.to_pylist(), dtype=object)
    return arr.to_numpy(zero_copy_only=False)


class SimfailDataset:
    """Read access to a simfail dataset written by :class:`~simfail.dataset.writer.DatasetWriter`.

    Raises:
        DatasetFormatError: ``meta/info.json`` is missing, unreadable or disagrees with the
            episodes files.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        info_path = self.root / L.INFO_PATH
        if not info_path.is_file():
            raise DatasetFormatError(
                f"{self.root} is not a simfail dataset: {L.INFO_PATH} is missing "
                "(was the run finalized?)"
            )
        info = read_json(info_path, DatasetFormatError)
        if not isinstance(info, dict):
            raise DatasetFormatError(f"{info_path} does not hold a JSON object")
        missing = [k for k in _REQUIRED_INFO if k not in info]
        if missing:
            raise DatasetFormatError(f"{info_path} lacks the keys {missing}")
        if info["codebase_version"] != L.CODEBASE_VERSION:
            raise DatasetFormatError(
                f"{info_path}: codebase_version is {info['codebase_version']!r}, this reader supports "
                f"{L.CODEBASE_VERSION!r}"
            )
        self._info = info
        self.fps = int(info["fps"])
        self.video_keys = [k for k, v in info["features"].items() if isinstance(v, dict) and v.get("dtype") == "video"]
        self._episodes = self._load_episodes()
        n = self._episodes.num_rows
        if n != int(info["total_episodes"]):
            raise DatasetFormatError(
                f"{info_path} says total_episodes={info['total_episodes']} but the episodes files hold {n} "
                "episodes (finalize() was not run after the last group?)"
            )
        frames = int(pc.sum(self._episodes.column("length")).as_py() or 0) if n else 0
        if frames != int(info["total_frames"]):
            raise DatasetFormatError(
                f"{info_path} says total_frames={info['total_frames']} but the episodes hold {frames} frames"
            )
        if n and not np.array_equal(self._episodes.column("episode_index").to_numpy(), np.arange(n)):
            raise DatasetFormatError(f"episode indices in {self.root / 'meta/episodes'} are not 0..{n - 1}")
        self._rows = {name: self._episodes.column(name).to_pylist() for name in self._light_columns()}
        self._tasks = self._load_tasks()
        self._preferences = self._load_preferences()
        meta_path = self.root / L.SIMFAIL_META_PATH
        try:
            self._simfail_meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
        except (OSError, ValueError) as exc:
            raise DatasetFormatError(f"cannot read {meta_path}: {exc}") from exc
        self._data_cache: OrderedDict[tuple[int, int], pa.Table] = OrderedDict()

    # ---------------------------------------------------------------- loading

    def _load_episodes(self) -> pa.Table:
        files = L.list_chunk_files(self.root / "meta" / "episodes", "parquet")
        if not files:
            if int(self._info.get("total_episodes", 0)) == 0:
                from simfail.dataset.writer import episodes_schema

                feats = {k: v for k, v in self._info["features"].items() if k not in self.video_keys}
                return episodes_schema(feats, self.video_keys).empty_table()
            raise DatasetFormatError(f"no episodes files under {self.root / 'meta/episodes'}")
        tables = []
        for _, _, path in files:
            try:
                tables.append(pq.read_table(path))
            except (OSError, pa.ArrowException) as exc:
                raise DatasetFormatError(f"cannot read {path}: {exc}") from exc
        try:
            table = pa.concat_tables(tables)
        except pa.ArrowInvalid as exc:
            raise DatasetFormatError(f"episodes files under {self.root / 'meta/episodes'} disagree on columns") from exc
        needed = ["episode_index", "tasks", "length", "dataset_from_index", "dataset_to_index",
                  "data/chunk_index", "data/file_index", "simfail.group_id", "simfail.score"]
        for key in self.video_keys:
            needed += [f"videos/{key}/{c}" for c in ("chunk_index", "file_index", "from_timestamp", "to_timestamp")]
        lacking = [c for c in needed if c not in table.column_names]
        if lacking:
            raise DatasetFormatError(f"episodes files lack the columns {lacking}")
        return table.sort_by("episode_index")

    def _light_columns(self) -> list[str]:
        return [c for c in self._episodes.column_names if not c.startswith("stats/")]

    def _load_tasks(self) -> dict[str, int]:
        path = self.root / L.TASKS_PATH
        if not path.is_file():
            if self.num_episodes:
                raise DatasetFormatError(f"{path} is missing")
            return {}
        try:
            table = pq.read_table(path)
        except (OSError, pa.ArrowException) as exc:
            raise DatasetFormatError(f"cannot read {path}: {exc}") from exc
        if "task_index" not in table.column_names:
            raise DatasetFormatError(f"{path} has no task_index column")
        text_cols = [c for c in table.column_names if c != "task_index"]
        if not text_cols:
            raise DatasetFormatError(f"{path} has no task string column")
        col = "task" if "task" in text_cols else text_cols[0]
        return {str(t): int(i) for t, i in zip(table.column(col).to_pylist(), table.column("task_index").to_pylist())}

    def _load_preferences(self) -> pa.Table:
        path = self.root / L.PREFERENCES_PATH
        if not path.is_file():
            return pa.table({c: pa.array([], type=pa.int64()) for c in ("group_id", "episode_a", "episode_b", "preferred")}
                            | {c: pa.array([], type=pa.float64()) for c in ("score_a", "score_b")})
        try:
            return pq.read_table(path)
        except (OSError, pa.ArrowException) as exc:
            raise DatasetFormatError(f"cannot read {path}: {exc}") from exc

    # ---------------------------------------------------------------- properties

    @property
    def info(self) -> dict[str, Any]:
        return self._info

    @property
    def num_episodes(self) -> int:
        return self._episodes.num_rows

    @property
    def num_frames(self) -> int:
        return int(self._info["total_frames"])

    def __len__(self) -> int:
        return self.num_episodes

    @property
    def views(self) -> list[str]:
        return [k.removeprefix("observation.images.") for k in self.video_keys]

    @property
    def episodes_table(self) -> pa.Table:
        """All episode rows (including the ``stats/...`` columns) as a pyarrow table."""
        return self._episodes

    @property
    def episodes(self) -> list[dict[str, Any]]:
        """One dict per episode (all columns except ``stats/...``), by episode index."""
        names = list(self._rows)
        return [{name: self._rows[name][i] for name in names} for i in range(self.num_episodes)]

    @property
    def preferences_table(self) -> pa.Table:
        return self._preferences

    @property
    def preferences(self) -> list[Preference]:
        """Strict preferences (a real dataset's human ties are left out, as the paper does)."""
        t = self._preferences.to_pydict()
        ties = t.get("tie") or [False] * len(t["group_id"])
        return [
            Preference(int(g), int(a), int(b), int(p), float(sa), float(sb))
            for g, a, b, p, sa, sb, tie in zip(
                t["group_id"], t["episode_a"], t["episode_b"], t["preferred"], t["score_a"], t["score_b"], ties
            )
            if not tie
        ]

    @property
    def source(self) -> str:
        """``"real"`` for a dataset written by ``simfail import-real``, else ``"sim"``."""
        return str(self._simfail_meta.get("source") or "sim")

    @property
    def verdicts(self) -> list[dict[str, Any]]:
        """Every row of ``meta/preferences.parquet`` (a real dataset's human verdicts, ties
        included with ``preferred = -1`` and ``tie = True``)."""
        return self._preferences.to_pylist()

    @property
    def tasks(self) -> dict[str, int]:
        """Task string -> task_index."""
        return dict(self._tasks)

    @property
    def simfail_meta(self) -> dict[str, Any]:
        return self._simfail_meta

    @property
    def stats(self) -> dict[str, Any]:
        path = self.root / L.STATS_PATH
        return json.loads(path.read_text()) if path.is_file() else {}

    # ---------------------------------------------------------------- per-episode access

    def _check_ep(self, ep_index: int) -> int:
        ep = int(ep_index)
        if not 0 <= ep < self.num_episodes:
            raise IndexError(f"episode {ep_index} out of range (dataset has {self.num_episodes} episodes)")
        return ep

    def episode(self, ep_index: int) -> dict[str, Any]:
        """The episodes-file row of one episode (without ``stats/...``)."""
        ep = self._check_ep(ep_index)
        return {name: values[ep] for name, values in self._rows.items()}

    def _data_table(self, chunk: int, file: int) -> pa.Table:
        key = (chunk, file)
        if key in self._data_cache:
            self._data_cache.move_to_end(key)
            return self._data_cache[key]
        path = self.root / self._info["data_path"].format(chunk_index=chunk, file_index=file)
        try:
            table = pq.read_table(path)
        except FileNotFoundError as exc:
            raise DatasetFormatError(f"data file {path} is missing") from exc
        except (OSError, pa.ArrowException) as exc:
            raise DatasetFormatError(f"cannot read {path}: {exc}") from exc
        self._data_cache[key] = table
        while len(self._data_cache) > 4:
            self._data_cache.popitem(last=False)
        return table

    def episode_columns(self, ep_index: int) -> dict[str, np.ndarray]:
        """Per-frame columns of one episode: ``(T,)`` scalars, ``(T, D)`` vectors."""
        ep = self._check_ep(ep_index)
        table = self._data_table(int(self._rows["data/chunk_index"][ep]), int(self._rows["data/file_index"][ep]))
        rows = table.filter(pc.equal(table.column("episode_index"), ep))
        return {name: _to_numpy(rows.column(name)) for name in rows.column_names}

    def _video_key(self, view: str) -> str:
        key = view if view.startswith("observation.images.") else L.video_key(view)
        if key not in self.video_keys:
            raise KeyError(f"unknown view {view!r}; views: {', '.join(self.views)}")
        return key

    def video_file(self, ep_index: int, view: str) -> tuple[Path, float, float]:
        """``(mp4 path, from_timestamp, to_timestamp)`` of one episode's view."""
        ep = self._check_ep(ep_index)
        key = self._video_key(view)
        chunk = int(self._rows[f"videos/{key}/chunk_index"][ep])
        file = int(self._rows[f"videos/{key}/file_index"][ep])
        path = self.root / self._info["video_path"].format(video_key=key, chunk_index=chunk, file_index=file)
        return path, float(self._rows[f"videos/{key}/from_timestamp"][ep]), float(self._rows[f"videos/{key}/to_timestamp"][ep])

    def episode_frames(self, ep_index: int, view: str) -> np.ndarray:
        """Decoded ``uint8 (T, H, W, 3)`` frames of one episode's camera view."""
        ep = self._check_ep(ep_index)
        key = self._video_key(view)
        path, start, _ = self.video_file(ep, key)
        length = int(self._rows["length"][ep])
        h, w = (int(v) for v in self._info["features"][key]["shape"][:2])
        if not path.is_file():
            raise DatasetFormatError(f"video file {path} is missing")
        frames = decode_frames(path, start_time=start, num_frames=length, size=(h, w))
        if frames.shape[0] != length:
            raise DatasetFormatError(
                f"episode {ep} view {key}: decoded {frames.shape[0]} frames from {path}, expected {length}"
            )
        return frames

    def groups(self) -> dict[int, list[int]]:
        """Counterfactual group id -> its episode indices (in episode order)."""
        out: dict[int, list[int]] = {}
        for ep, gid in enumerate(self._rows["simfail.group_id"]):
            out.setdefault(int(gid), []).append(ep)
        return out

    def failures(self, ep_index: int) -> list[FailureEvent]:
        ep = self._check_ep(ep_index)
        return failures_from_json(self._rows["simfail.failures"][ep])

    # ---------------------------------------------------------------- consistency check

    def check(self, *, videos: bool = True) -> list[str]:
        """Verify the whole dataset; returns a list of problems (empty when consistent).

        Checks indices (episode, frame, global) and their contiguity, lengths against the data
        files and against the decoded frames of every view, video timestamps against
        ``from_timestamp + timestamp`` (within 1e-4 s), tasks, and preferences against scores.
        """
        problems: list[str] = []
        n = self.num_episodes
        info = self._info
        r = self._rows
        fps = self.fps
        lengths = np.asarray(r["length"], dtype=np.int64)
        frm = np.asarray(r["dataset_from_index"], dtype=np.int64)
        to = np.asarray(r["dataset_to_index"], dtype=np.int64)

        # --- info / episode table
        if info.get("splits", {}).get("train") != f"0:{n}":
            problems.append(f"info.json splits.train is {info.get('splits')!r}, expected '0:{n}'")
        if int(info["total_tasks"]) != len(self._tasks):
            problems.append(f"info.json total_tasks={info['total_tasks']} but tasks.parquet has {len(self._tasks)}")
        if sorted(self._tasks.values()) != list(range(len(self._tasks))):
            problems.append("task indices in tasks.parquet are not 0..n-1")
        if n:
            if frm[0] != 0:
                problems.append(f"episode 0 starts at global index {frm[0]}, expected 0")
            for ep in np.flatnonzero(frm[1:] != to[:-1]):
                problems.append(f"episode {ep + 1} starts at index {frm[ep + 1]}, previous ends at {to[ep]}")
            for ep in np.flatnonzero(to - frm != lengths):
                problems.append(f"episode {ep}: to-from={to[ep] - frm[ep]} != length {lengths[ep]}")
            for ep in np.flatnonzero(lengths < 1):
                problems.append(f"episode {ep} has length {lengths[ep]}")
        for ep, tasks in enumerate(r["tasks"]):
            if not tasks or any(t not in self._tasks for t in tasks):
                problems.append(f"episode {ep}: tasks {tasks!r} not all in tasks.parquet")
        for ep, text in enumerate(r["simfail.failures"]):
            try:
                failures_from_json(text)
            except (ValueError, TypeError, KeyError) as exc:
                problems.append(f"episode {ep}: simfail.failures does not parse: {exc}")

        # --- one group per file index
        file_groups: dict[tuple[int, int], set[int]] = {}
        for ep in range(n):
            loc = (int(r["data/chunk_index"][ep]), int(r["data/file_index"][ep]))
            file_groups.setdefault(loc, set()).add(int(r["simfail.group_id"][ep]))
        for loc, gids in file_groups.items():
            if len(gids) != 1:
                problems.append(f"data file chunk {loc[0]} file {loc[1]} holds several groups {sorted(gids)}")

        # --- data files
        timestamps: dict[int, np.ndarray] = {}
        by_file: dict[tuple[int, int], list[int]] = {}
        for ep in range(n):
            by_file.setdefault((int(r["data/chunk_index"][ep]), int(r["data/file_index"][ep])), []).append(ep)
        feature_names = [k for k, v in info["features"].items() if v.get("dtype") != "video"]
        for (chunk, file), eps in sorted(by_file.items()):
            try:
                table = self._data_table(chunk, file)
            except DatasetFormatError as exc:
                problems.append(str(exc))
                continue
            lacking = [c for c in feature_names if c not in table.column_names]
            if lacking:
                problems.append(f"data file chunk {chunk} file {file} lacks columns {lacking}")
                continue
            ep_col = table.column("episode_index").to_numpy()
            expected_rows = int(lengths[eps].sum())
            if table.num_rows != expected_rows:
                problems.append(
                    f"data file chunk {chunk} file {file} has {table.num_rows} rows, its episodes have {expected_rows}"
                )
            stray = sorted(set(np.unique(ep_col).tolist()) - set(eps))
            if stray:
                problems.append(f"data file chunk {chunk} file {file} holds rows of episodes {stray} it should not")
            fi_all = table.column("frame_index").to_numpy()
            ix_all = table.column("index").to_numpy()
            ts_all = table.column("timestamp").to_numpy()
            ti_all = table.column("task_index").to_numpy()
            done_all = table.column("next.done").to_numpy(zero_copy_only=False)
            for ep in eps:
                mask = ep_col == ep
                t = int(mask.sum())
                if t != lengths[ep]:
                    problems.append(f"episode {ep}: {t} frames in the data file, length says {lengths[ep]}")
                    continue
                fi, ix, ts = fi_all[mask], ix_all[mask], ts_all[mask]
                if not np.array_equal(fi, np.arange(t)):
                    problems.append(f"episode {ep}: frame_index is not 0..{t - 1}")
                if not np.array_equal(ix, np.arange(frm[ep], to[ep])):
                    problems.append(f"episode {ep}: index is not {frm[ep]}..{to[ep] - 1}")
                if np.abs(ts.astype(np.float64) - np.arange(t) / fps).max() > _TOL:
                    problems.append(f"episode {ep}: timestamp differs from frame_index/fps by more than {_TOL}s")
                task_ids = {self._tasks.get(tk, -1) for tk in r["tasks"][ep]}
                if not set(np.unique(ti_all[mask]).tolist()) <= task_ids:
                    problems.append(f"episode {ep}: task_index does not match its tasks {r['tasks'][ep]!r}")
                done = done_all[mask]
                if not (done[-1] and not done[:-1].any()):
                    problems.append(f"episode {ep}: next.done is not true on the last frame only")
                timestamps[ep] = ts.astype(np.float64)

        # --- videos
        if videos:
            for key in self.video_keys:
                vfiles: dict[tuple[int, int], list[int]] = {}
                for ep in range(n):
                    loc = (int(r[f"videos/{key}/chunk_index"][ep]), int(r[f"videos/{key}/file_index"][ep]))
                    vfiles.setdefault(loc, []).append(ep)
                for (chunk, file), eps in sorted(vfiles.items()):
                    path = self.root / info["video_path"].format(video_key=key, chunk_index=chunk, file_index=file)
                    if not path.is_file():
                        problems.append(f"video file {path} is missing")
                        continue
                    try:
                        times = frame_times(path)
                    except VideoCodecError as exc:
                        problems.append(f"video file {path} does not decode: {exc}")
                        continue
                    expected = int(lengths[eps].sum())
                    if len(times) != expected and not (self.source == "real" and len(times) > expected):
                        # an imported real video may hold unused frames after its episode
                        # (its views differ in length; meta/simfail.json import.trimmed_frames)
                        problems.append(f"{path}: {len(times)} decoded frames, its episodes have {expected}")
                    eps_sorted = sorted(eps, key=lambda e: r[f"videos/{key}/from_timestamp"][e])
                    prev_to = None
                    for ep in eps_sorted:
                        t0 = float(r[f"videos/{key}/from_timestamp"][ep])
                        t1 = float(r[f"videos/{key}/to_timestamp"][ep])
                        where = f"episode {ep} view {key}"
                        if abs((t1 - t0) - lengths[ep] / fps) > _TOL:
                            problems.append(f"{where}: to-from={t1 - t0:.6f}s but length/fps={lengths[ep] / fps:.6f}s")
                        if prev_to is not None and t0 < prev_to - _TOL:
                            problems.append(f"{where}: overlaps the previous episode in {path.name}")
                        prev_to = t1
                        inside = int(((times >= t0 - _TOL) & (times < t1 - _TOL)).sum())
                        if inside != lengths[ep]:
                            problems.append(f"{where}: {inside} decoded frames in [{t0}, {t1}), length is {lengths[ep]}")
                            continue
                        want = t0 + timestamps.get(ep, np.arange(lengths[ep]) / fps)
                        pos = np.searchsorted(times, want)
                        lo = np.clip(pos - 1, 0, len(times) - 1)
                        hi = np.clip(pos, 0, len(times) - 1)
                        nearest = np.minimum(np.abs(times[lo] - want), np.abs(times[hi] - want))
                        bad = int((nearest > _TOL).sum())
                        if bad:
                            problems.append(f"{where}: {bad} frames have no decoded frame within {_TOL}s")

        # --- preferences
        if self.source == "real":
            problems += self._check_verdicts()
            return problems
        expected_prefs: list[tuple] = []
        scores = r["simfail.score"]
        for gid, eps in self.groups().items():
            for p in strict_preferences(gid, eps, [float(scores[e]) for e in eps]):
                expected_prefs.append((p.group_id, p.episode_a, p.episode_b, p.preferred, p.score_a, p.score_b))
        stored = [(p.group_id, p.episode_a, p.episode_b, p.preferred, p.score_a, p.score_b) for p in self.preferences]
        if sorted(stored) != sorted(expected_prefs):
            missing = len(set(expected_prefs) - set(stored))
            extra = len(set(stored) - set(expected_prefs))
            problems.append(f"preferences.parquet disagrees with the scores: {missing} pairs missing, {extra} unexpected")
        for p in self.preferences:
            better = p.episode_a if p.score_a > p.score_b else p.episode_b
            if p.score_a == p.score_b or p.preferred != better:
                problems.append(f"preference {p} is inconsistent with its scores")
        return problems

    def _check_verdicts(self) -> list[str]:
        """Human verdicts of a real dataset: within one group, ``preferred`` one of the pair
        (or ``-1`` for a tie), scores equal to the episodes' scores. They need not agree with
        the scores: a human may prefer the rollout they scored lower."""
        problems: list[str] = []
        scores = self._rows["simfail.score"]
        gids = self._rows["simfail.group_id"]
        n = self.num_episodes
        for i, v in enumerate(self.verdicts):
            a, b, p = int(v["episode_a"]), int(v["episode_b"]), int(v["preferred"])
            where = f"preference row {i}"
            if not (0 <= a < n and 0 <= b < n) or a == b:
                problems.append(f"{where}: episodes {a}, {b} are not two episodes of the dataset")
                continue
            if int(gids[a]) != int(v["group_id"]) or int(gids[b]) != int(v["group_id"]):
                problems.append(f"{where}: episodes {a}, {b} are not both in group {v['group_id']}")
            tie = bool(v.get("tie", False))
            if (tie and p != -1) or (not tie and p not in (a, b)):
                problems.append(f"{where}: preferred={p} is not {'-1 (a tie)' if tie else f'{a} or {b}'}")
            if float(v["score_a"]) != float(scores[a]) or float(v["score_b"]) != float(scores[b]):
                problems.append(f"{where}: score_a/score_b differ from the episodes' simfail.score")
        return problems
