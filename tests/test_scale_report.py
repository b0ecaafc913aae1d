"""``simfail scale-report``: the projection is arithmetic on the measurements (checked here on
made-up measurements); the block it writes into the docs replaces only the marked block. The
command itself runs on tiny settings in tests/test_docs_commands.py (docs/scale.md shows it)."""

from __future__ import annotations

import pytest

from simfail.errors import ConfigError
from simfail.scale.report import BEGIN, END, markdown, project, update_block

MEASURED = {
    "when": "2026-01-01 00:00 UTC", "cpus": 2, "load_average_before": 1.0, "load_average_after": 1.5,
    "run": {"task": "pick_place", "groups": 3, "episodes": 30, "width": 256, "height": 256, "fps": 10,
            "failures": ["all"], "executor": "ray", "workers": 1, "cpus_per_worker": 2.0, "wall_s": 60.0,
            "driver_merge_s": 0.5},
    "workers": {"h:1": {"episodes": 30, "groups": 3, "seconds": 21.6, "shards": 3, "episodes_per_hour": 5000.0}},
    "per_worker_episodes_per_hour": 5000.0,
    "merge": {"copy": {"wall_s": 2.0, "cpu_s": 1.0, "adopt_s": 1.2, "verify_s": 0.3, "episodes": 30},
              "link": {"wall_s": 1.5, "cpu_s": 0.6, "adopt_s": 0.6, "verify_s": 0.3, "episodes": 30}},
    "bytes_per_episode": {"videos": 250e3, "data": 30e3, "meta": 20e3},
}


def test_projection_is_the_slower_of_generation_and_the_drivers_merge():
    rows = project(MEASURED, [1, 10, 100, 1000], 1_000_000)
    merge_h = 1_000_000 * (0.9 / 30) / 3600  # 30 s per 1,000 episodes: 8.3 h for a million
    assert [r["generate_h"] for r in rows] == pytest.approx([200.0, 20.0, 2.0, 0.2])
    assert all(r["merge_h"] == pytest.approx(merge_h) for r in rows)
    assert [r["limit"] for r in rows] == ["workers (generation)"] * 2 + ["driver (merge)"] * 2
    assert rows[2]["wall_h"] == pytest.approx(merge_h)
    assert rows[0]["storage_total_gb"] == pytest.approx(300.0)
    # 1 machine: 5,000 episodes/h x 300 KB = 0.42 MB/s; 100 machines: the merge paces the writes
    assert rows[0]["storage_write_mb_s"] == pytest.approx(5000 * 300e3 / 3600 / 1e6)
    assert rows[3]["storage_write_mb_s"] == pytest.approx(1_000_000 / merge_h * 300e3 / 3600 / 1e6)
    assert [r["workers"] for r in project(MEASURED, [4], 10, workers_per_machine=3)] == [12]


def test_markdown_block_states_the_load_and_the_numbers():
    text = markdown(MEASURED, project(MEASURED, [1, 100], 1_000_000), 1_000_000)
    assert "load average 1.0 before, 1.5 after on 2 cores" in text and "no GPU" in text
    assert "**5,000**" in text and "**30.0 s**" in text  # per-worker rate, hard-link merge per 1,000
    assert "| 1 | 200 h | 8.3 h | **200 h** | workers (generation) |" in text
    assert "| 100 | 2.0 h | 8.3 h | **8.3 h** | driver (merge) |" in text


def test_update_rewrites_only_the_marked_block(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(f"intro\n{BEGIN}\nold numbers\n{END}\noutro\n")
    update_block(page, "new numbers")
    assert page.read_text() == f"intro\n{BEGIN}\nnew numbers\n{END}\noutro\n"
    bare = tmp_path / "bare.md"
    bare.write_text("no block")
    with pytest.raises(ConfigError, match="no <!-- scale-report --> ... <!-- /scale-report --> block"):
        update_block(bare, "x")


def test_a_file_without_the_block_is_one_error_before_any_measuring(tmp_path, capsys):
    from simfail.cli import main

    bare = tmp_path / "bare.md"
    bare.write_text("no block")
    assert main(["scale-report", f"out={tmp_path / 'work'}", f"update=[{bare}]", "executor=local"]) == 2
    assert "no <!-- scale-report -->" in capsys.readouterr().err
    assert not (tmp_path / "work").exists()
