"""Resuming an interrupted realism run: no loss, no duplicates, the same result as an
uninterrupted run (labels, meta, decodable videos), and ``simfail check`` passes."""

from __future__ import annotations

import json
import shutil
import textwrap

import numpy as np
import pyarrow.parquet as pq
import pytest

from simfail.core.episode import VIEWS

from test_realism_command import LABELS, generate_small

#: An editor that copies the frames (like model=identity), counts its calls in a file and
#: raises KeyboardInterrupt on call number ``STOP_AT`` (an env variable; 0 = never).
EDITORS = textwrap.dedent('''
    import os
    from pathlib import Path

    import numpy as np


    class CountingCopy:
        def edit(self, frames, control, *, prompt, negative_prompt, seed):
            log = Path(os.environ["REALISM_CALLS"])
            n = (int(log.read_text()) if log.exists() else 0) + 1
            log.write_text(str(n))
            if n == int(os.environ.get("REALISM_STOP_AT", "0")):
                raise KeyboardInterrupt
            return np.array(frames, copy=True)

        def describe(self):
            return {"pipeline": "counting-copy"}


    class RejectSome(CountingCopy):
        """Time-reverses the calls listed in REALISM_REVERSE (the fidelity check rejects them)."""

        def edit(self, frames, control, **kw):
            out = super().edit(frames, control, **kw)
            n = int(Path(os.environ["REALISM_CALLS"]).read_text())
            if str(n) in os.environ.get("REALISM_REVERSE", "").split(","):
                return np.ascontiguousarray(out[::-1])
            return out
''')


@pytest.fixture(scope="module")
def three_groups(tmp_path_factory):
    """Three groups at 64x64, 2 fps, expert + drop + collision each (9 episodes, 17 frames each)."""
    return generate_small(tmp_path_factory.mktemp("realism_resume") / "ds", groups=3)


@pytest.fixture
def editors(tmp_path, monkeypatch):
    (tmp_path / "realism_resume_editors.py").write_text(EDITORS)
    monkeypatch.syspath_prepend(str(tmp_path))
    calls = tmp_path / "calls.txt"
    monkeypatch.setenv("REALISM_CALLS", str(calls))
    monkeypatch.delenv("REALISM_STOP_AT", raising=False)

    def reset(stop_at: int = 0) -> None:
        calls.unlink(missing_ok=True)
        monkeypatch.setenv("REALISM_STOP_AT", str(stop_at))

    def count() -> int:
        return int(calls.read_text()) if calls.exists() else 0

    return reset, count


def _run(data, out, model, *extra):
    from simfail.cli import main

    return main(["realism", f"data={data}", f"out={out}", f"model={model}", "progress=false", *extra])


def _meta(out):
    return json.loads((out / "meta/simfail.json").read_text())


def _without_timing(meta):
    m = json.loads(json.dumps(meta))
    m["realism"].pop("timing")
    return m


def _assert_same_dataset(a, b):
    """Two realism outputs hold the same episodes, labels, meta (timing aside) and frames."""
    from simfail.dataset.reader import SimfailDataset

    da, db = SimfailDataset(a), SimfailDataset(b)
    assert da.num_episodes == db.num_episodes and da.num_frames == db.num_frames
    assert da.groups() == db.groups()
    assert _without_timing(_meta(a)) == _without_timing(_meta(b))
    for name in ("meta/info.json", "meta/stats.json"):
        assert json.loads((a / name).read_text()) == json.loads((b / name).read_text()), name
    assert pq.read_table(a / "meta/preferences.parquet").equals(pq.read_table(b / "meta/preferences.parquet"))
    for ep in range(da.num_episodes):
        ca, cb = da.episode_columns(ep), db.episode_columns(ep)
        for k in LABELS:
            assert np.array_equal(ca[k], cb[k]), (ep, k)
        ra, rb = da.episode(ep), db.episode(ep)
        for k in ("simfail.group_id", "simfail.variant", "simfail.score", "simfail.rank", "simfail.failures", "length"):
            assert ra[k] == rb[k], (ep, k)
        for v in VIEWS:
            fa, fb = da.episode_frames(ep, v), db.episode_frames(ep, v)
            assert fa.shape == fb.shape == (ra["length"], 64, 64, 3)
            assert np.array_equal(fa, fb), (ep, v)


def test_interrupted_run_resumes_to_the_uninterrupted_result(three_groups, tmp_path, editors, capsys):
    from simfail.cli import main
    from simfail.dataset.reader import SimfailDataset

    reset, count = editors
    model = "realism_resume_editors:CountingCopy"
    full = tmp_path / "full"
    reset()
    assert _run(three_groups, full, model) == 0
    assert count() == 9
    # interrupted on the first episode of the second group (call 4): group 0 is committed
    part = tmp_path / "part"
    reset(stop_at=4)
    assert _run(three_groups, part, model) == 130
    assert "rerun with resume=true" in capsys.readouterr().err
    assert SimfailDataset(part).num_episodes == 3 and main(["check", str(part)]) == 0
    assert [e["group"] for e in _meta(part)["realism"]["episodes"]] == [0, 0, 0]
    # the same command again is refused (nothing written), resume=true continues
    assert _run(three_groups, part, model) == 2
    assert "resume=true" in capsys.readouterr().err
    reset()
    assert _run(three_groups, part, model, "resume=true") == 0
    assert count() == 6  # only groups 1 and 2 were edited again
    assert "1 group(s) already done" in capsys.readouterr().out
    assert main(["check", f"data={part}"]) == 0
    _assert_same_dataset(full, part)
    timing = _meta(part)["realism"]["timing"]
    assert timing["sessions"] == 2 and timing["frames"] == 9 * 17 * 3
    # resuming a finished run edits nothing and changes nothing
    reset()
    assert _run(three_groups, part, model, "resume=true") == 0
    assert count() == 0
    _assert_same_dataset(full, part)


def test_crash_between_commit_and_meta_loses_nothing(three_groups, tmp_path, editors, monkeypatch):
    """A run killed right after a group's files are committed (before the meta is rewritten)
    resumes without redoing or losing that group: the record was written before the commit."""
    from simfail.cli import main
    from simfail.dataset.writer import DatasetWriter

    reset, count = editors
    model = "realism_resume_editors:CountingCopy"
    full = tmp_path / "full"
    reset()
    assert _run(three_groups, full, model) == 0
    original = DatasetWriter.write_group
    written = []

    def write_then_die(self, group_id, episodes):
        out = original(self, group_id, episodes)
        written.append(group_id)
        if len(written) == 2:
            raise KeyboardInterrupt  # group 1 is on disk, its post-commit finalize never runs
        return out

    monkeypatch.setattr(DatasetWriter, "write_group", write_then_die)
    part = tmp_path / "part"
    reset()
    assert _run(three_groups, part, model) == 130
    monkeypatch.setattr(DatasetWriter, "write_group", original)
    assert [e["group"] for e in _meta(part)["realism"]["episodes"]] == [0, 0, 0, 1, 1, 1]
    reset()
    assert _run(three_groups, part, model, "resume=true") == 0
    assert count() == 3  # only group 2
    assert main(["check", str(part)]) == 0
    _assert_same_dataset(full, part)


def test_half_written_group_is_discarded_and_redone(three_groups, tmp_path, editors, monkeypatch):
    """A crash inside a group's commit (some of its files moved into place, not its episodes
    file) leaves orphans that resume removes; the group is edited again."""
    from simfail.cli import main
    from simfail.dataset.writer import DatasetWriter

    reset, count = editors
    model = "realism_resume_editors:CountingCopy"
    full = tmp_path / "full"
    reset()
    assert _run(three_groups, full, model) == 0
    original = DatasetWriter._commit
    commits = []

    def commit_half(self, staged):
        commits.append(1)
        if len(commits) == 2:
            import os

            src, dst = staged[0]  # the data file lands, the rest does not
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.replace(src, dst)
            raise KeyboardInterrupt
        return original(self, staged)

    monkeypatch.setattr(DatasetWriter, "_commit", commit_half)
    part = tmp_path / "part"
    reset()
    assert _run(three_groups, part, model) == 130
    monkeypatch.setattr(DatasetWriter, "_commit", original)
    assert (part / "data/chunk-000/file-001.parquet").exists()  # the orphan
    reset()
    assert _run(three_groups, part, model, "resume=true") == 0
    assert count() == 6
    assert main(["check", str(part)]) == 0
    _assert_same_dataset(full, part)


@pytest.mark.parametrize("reverse", ["4", "4,5,6"], ids=["one-rejected", "group-rejected"])
def test_resume_keeps_rejections_and_all_rejected_groups(three_groups, tmp_path, editors, monkeypatch, reverse):
    from simfail.cli import main

    reset, count = editors
    model = "realism_resume_editors:RejectSome"
    monkeypatch.setenv("REALISM_REVERSE", reverse)
    full = tmp_path / "full"
    reset()
    assert _run(three_groups, full, model) == 0
    record = _meta(full)["realism"]
    assert [(r["group"], r["source_episode"]) for r in record["rejected"]] == [(1, int(c) - 1) for c in reverse.split(",")]
    assert all("temporal agreement" in " ".join(r["reasons"]) for r in record["rejected"])
    assert record["empty_groups"] == ([1] if reverse == "4,5,6" else [])
    part = tmp_path / "part"
    reset(stop_at=7)  # stops at the first episode of group 2, after group 1 was done
    assert _run(three_groups, part, model) == 130
    reset()  # the call counter restarts: calls 1..3 of the resumed run are not reversed, as in the full run
    assert _run(three_groups, part, model, "resume=true") == 0
    assert count() == 3  # group 1 is not edited again, even when none of its episodes was written
    assert main(["check", str(part)]) == 0
    _assert_same_dataset(full, part)


def test_resume_with_other_settings_is_one_clear_error(three_groups, tmp_path, editors, capsys):
    reset, count = editors
    model = "realism_resume_editors:CountingCopy"
    part = tmp_path / "part"
    reset(stop_at=4)
    assert _run(three_groups, part, model) == 130
    capsys.readouterr()
    before = sorted(str(p.relative_to(part)) for p in part.rglob("*"))
    mtimes = {p: p.stat().st_mtime_ns for p in part.rglob("*") if p.is_file()}
    reset()
    assert _run(three_groups, part, model, "resume=true", "seed=5", "fidelity.temporal_min=0.2") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("simfail: error: cannot resume")
    assert "seed=0 (this run: 5)" in err[0] and "temporal_min" in err[0]
    assert sorted(str(p.relative_to(part)) for p in part.rglob("*")) == before
    assert all(p.stat().st_mtime_ns == t for p, t in mtimes.items())
    # batch_size and max_groups may change on resume
    assert _run(three_groups, part, model, "resume=true", "batch_size=2", "max_groups=2") == 0
    assert _meta(part)["total_groups"] == 2
    assert _run(three_groups, part, model, "resume=true", "batch_size=3") == 0
    assert _meta(part)["total_groups"] == 3
    # resume and overwrite together, or resume into a generate (not realism) dataset: one error
    assert _run(three_groups, part, model, "resume=true", "overwrite=true") == 2
    assert "not both" in capsys.readouterr().err
    other = tmp_path / "generated"
    shutil.copytree(three_groups, other)
    assert _run(part, other, model, "resume=true") == 2
    assert "not the output of simfail realism" in capsys.readouterr().err
    # resume=true into a missing folder is an ordinary run
    reset()
    assert _run(three_groups, tmp_path / "fresh", model, "resume=true") == 0 and count() == 9
