"""``simfail bench mode=rollout``: the cost of recording a policy against ``generate``.

One run, same machine, same process, same settings: first ``simfail generate`` writes ``groups``
groups (``E`` episodes of ``T`` frames) into a temporary folder; then ``simfail rollout`` writes
the same number of episodes of the same length (``seeds = groups``, ``samples = E / groups``
rollouts of the policy per initial state, no reference episode) into another. Both include the
physics, labels, rendering, encoding and writing. The rollout's time *excludes the policy's own
compute* (the seconds spent inside ``policy.act``, measured around every call): what is left is
the cost of recording a policy (runner steps, observations, labels, frames, writer).

``ratio = rollout seconds (policy excluded) / generate seconds`` for the same episode count; the
target is ``<= TARGET_RATIO``. Generation reuses the expert's prefix for its variants (physics
and frames), rollouts cannot (every policy episode is closed-loop from frame 0), which is most
of the gap.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from simfail.config import GenerateConfig

#: Rollout recording may cost at most this much more than generating the same episodes.
TARGET_RATIO = 1.3


@dataclass
class RolloutBenchConfig:
    generate: GenerateConfig
    policy: str = "expert"
    policy_kwargs: dict[str, Any] = field(default_factory=dict)


def run_rollout_bench(cfg: RolloutBenchConfig, log=print) -> dict[str, Any]:
    from simfail import generate as gen
    from simfail.policy.rollout import RolloutConfig
    from simfail.policy.rollout import run as run_rollout

    g = cfg.generate
    with tempfile.TemporaryDirectory(prefix="simfail-bench-rollout-") as tmp:
        t0 = time.perf_counter()
        gsum = gen.run(replace(g, out=str(Path(tmp) / "generate"), progress=False, resume=False, overwrite=False))
        t_gen = time.perf_counter() - t0
        episodes = int(gsum["episodes"])
        per_group = max(1, round(episodes / max(1, gsum["groups"])))
        log(f"bench rollout: generate wrote {episodes} episodes in {t_gen:.1f} s")
        rcfg = RolloutConfig(policy=cfg.policy, policy_kwargs=dict(cfg.policy_kwargs), task=g.task, seeds=g.groups,
                             samples=per_group, seed=g.seed, out=str(Path(tmp) / "rollout"),
                             width=g.render.width, height=g.render.height, fps=g.render.fps, crf=g.dataset.crf,
                             progress=False)
        t0 = time.perf_counter()
        rsum = run_rollout(rcfg)
        t_roll = time.perf_counter() - t0
    policy_s = float(rsum["time"]["policy"])
    r_eps = int(rsum["episodes"])
    recording = t_roll - policy_s
    gen_rate = episodes / t_gen * 3600.0 if t_gen > 0 else 0.0
    roll_rate = r_eps / recording * 3600.0 if recording > 0 else 0.0
    return {
        "task": g.task, "groups": g.groups, "width": g.render.width, "height": g.render.height, "fps": g.render.fps,
        "policy": cfg.policy, "policy_kwargs": cfg.policy_kwargs,
        "generate": {"episodes": episodes, "seconds": t_gen, "episodes_per_hour": gen_rate},
        "rollout": {"episodes": r_eps, "seconds": t_roll, "policy_seconds": policy_s,
                    "recording_seconds": recording, "episodes_per_hour": roll_rate,
                    "physics_s": rsum["time"]["physics"], "labels_s": rsum["time"]["labels"],
                    "render_s": rsum["time"]["render"]},
        "ratio": (recording / r_eps) / (t_gen / episodes) if r_eps and episodes else float("nan"),
        "target_ratio": TARGET_RATIO,
    }


def rollout_bench_table(r: dict[str, Any]) -> str:
    g, ro = r["generate"], r["rollout"]
    ok = "meets" if r["ratio"] <= r["target_ratio"] else "MISSES"
    return "\n".join([
        f"simfail bench mode=rollout: {r['task']}, {r['groups']} initial states, {r['width']}x{r['height']} @ "
        f"{r['fps']} fps, policy {r['policy']}",
        f"{'run':<28}{'episodes':>10}{'seconds':>10}{'episodes/h':>12}",
        "-" * 60,
        f"{'generate':<28}{g['episodes']:>10}{g['seconds']:>10.1f}{g['episodes_per_hour']:>12.0f}",
        f"{'rollout (policy excluded)':<28}{ro['episodes']:>10}{ro['recording_seconds']:>10.1f}"
        f"{ro['episodes_per_hour']:>12.0f}",
        f"{'  policy compute (excluded)':<28}{'':>10}{ro['policy_seconds']:>10.1f}",
        "-" * 60,
        f"rollout / generate time per episode: {r['ratio']:.2f}x ({ok} the {r['target_ratio']}x target)",
    ])


def run(cfg: Any) -> int:
    """``simfail bench mode=rollout [policy=NAME] [policy.KEY=VALUE] [json=PATH] <generate keys>``:
    ``cfg`` is the checked :class:`simfail.config.BenchConfig` (one task, ``repeats=1``)."""
    import json as _json

    result = run_rollout_bench(RolloutBenchConfig(cfg.generate_config(), cfg.policy, dict(cfg.policy_kwargs)))
    print(rollout_bench_table(result))
    if cfg.json is not None:
        from simfail.learn.checkpoint import atomic_write_bytes

        atomic_write_bytes(cfg.json, (_json.dumps(result, indent=2) + "\n").encode())
    return 0


def split_args(args: list[str]) -> tuple[list[str], dict[str, Any]]:
    """``simfail bench``'s ``policy.KEY=VALUE`` (VALUE read as YAML) -> ``{"policy_kwargs": {...}}``."""
    from simfail.errors import ConfigError
    from simfail.stress.commands import _yaml_value

    rest, kwargs = [], {}
    for a in args:
        key, sep, value = a.partition("=")
        key = key.strip()
        if sep and key.startswith("policy."):
            name = key[len("policy."):]
            if not name.isidentifier():
                raise ConfigError(f"bad policy argument name {name!r} in {a!r}")
            kwargs[name] = _yaml_value(value, key)
        else:
            rest.append(a)
    return rest, ({"policy_kwargs": kwargs} if kwargs else {})
