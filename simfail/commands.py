"""The ``simfail`` command registry.

A command is ONE entry: a name, a one-line summary, a config dataclass (typed fields whose
``metadata`` carries ``help``/``example``/``range``/``choices``, plus an optional
``validate()``; see :mod:`simfail.schema`) and a ``run(cfg) -> int`` function. Config and run
may be given as ``"module:attribute"`` strings so that ``simfail --help`` and ``import
simfail.commands`` stay cheap::

    register(Command("merge", "merge datasets into one", "simfail.dataset.merge:MergeConfig",
                     "simfail.dataset.merge:run", example="simfail merge DIR1 DIR2 out=DIR"))

Arguments are ``key=value`` overrides (Hydra syntax); a field with ``metadata["positional"]``
takes the bare arguments (``simfail check DIR``, ``simfail compare R1 R2 out=DIR``): one
value, or every bare argument when the field is a list. ``--cfg`` prints the checked
configuration (``cfg.shown()`` where the config defines it) and exits; ``-h``/``--help``
prints the help generated from the schema. Where ``configs/<config_name>.yaml`` exists it is
composed (its defaults list starts with the schema and may select config groups); otherwise
the schema alone is.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from simfail.errors import ConfigError, UnknownNameError

__all__ = ["Command", "COMMANDS", "register", "get_command", "build_config", "invoke", "command_help", "overview"]


def _resolve(ref: Any) -> Any:
    if isinstance(ref, str):
        module, _, attr = ref.partition(":")
        return getattr(importlib.import_module(module), attr)
    return ref


@dataclass(frozen=True)
class Command:
    """One ``simfail`` subcommand.

    Attributes:
        name: What the user types (``train-reward``).
        summary: One line for ``simfail --help``.
        config: The config dataclass, or ``"module:Class"``. ``None`` only while porting a
            command that still parses its own ``key=value`` arguments: ``run(args) -> int``
            then receives the raw argument list (and its docstring is the help).
        run: ``run(cfg) -> int`` (exit code), or ``"module:function"``.
        example: One typical command line.
        config_name: Packaged YAML / ConfigStore name (default: ``name`` with ``-`` -> ``_``).
        split: Optional ``split(args) -> (args, updates)``: takes out arguments the command
            parses itself (``model.KEY=VALUE``); ``updates`` is merged over the composed config.
        variants: Optional ``variants() -> {name: Command}`` (or ``"module:function"``): the
            command's first argument names one of them and the rest are that variant's settings
            (``simfail experiment real_plus_sim real=DIR ...``); ``config``/``run`` are then unused.
    """

    name: str
    summary: str
    config: Any
    run: Any
    example: str = ""
    config_name: str | None = None
    split: Any = None
    variants: Any = None

    @property
    def schema(self) -> type:
        return _resolve(self.config)

    @property
    def yaml_name(self) -> str:
        return self.config_name or self.name.replace("-", "_")


COMMANDS: dict[str, Command] = {}


def register(cmd: Command) -> Command:
    """Add ``cmd`` to the registry (a later entry with the same name replaces it)."""
    COMMANDS[cmd.name] = cmd
    return cmd


def get_command(name: str) -> Command:
    if name not in COMMANDS:
        raise UnknownNameError("command", name, list(COMMANDS))
    return COMMANDS[name]


def variants_of(cmd: Command) -> dict[str, Command]:
    """The variants of a command with ``variants`` (``{}`` for a plain command)."""
    return dict(_resolve(cmd.variants)()) if cmd.variants is not None else {}


def select(cmd: Command, args: list[str]) -> tuple[Command, list[str]]:
    """``(the command that runs, its arguments)``: for a command with variants, the variant its
    first argument names; a missing or unknown name is one error listing the variants."""
    if cmd.variants is None:
        return cmd, list(args)
    known = variants_of(cmd)
    if not args or "=" in args[0] or args[0].startswith("-"):
        raise ConfigError(f"usage: simfail {cmd.name} NAME [key=value ...] ({cmd.name}s: {', '.join(known)})")
    if args[0] not in known:
        raise UnknownNameError(cmd.name, args[0], list(known))
    return known[args[0]], list(args[1:])


# ----------------------------------------------------------------------------- arguments


def _positional_field(cls: type) -> tuple[str, bool] | None:
    """(name, takes a list) of the schema's positional field, if it has one."""
    from simfail.schema import _hints

    hints = _hints(cls)
    for f in dataclasses.fields(cls):
        if f.metadata.get("positional"):
            tp = hints.get(f.name, f.type)
            many = typing.get_origin(tp) in (list, tuple) or tp is Any
            return f.name, many
    return None


def _is_bare(arg: str, has_positional: bool) -> bool:
    key, sep, _ = arg.partition("=")
    if not sep:
        return True
    # a path that contains "=" (and exists) is a positional argument, not key=value
    return has_positional and ("/" in key or not key.strip()) and Path(arg).exists()


def parse_args(cmd: Command, args: list[str]) -> tuple[list[str], dict[str, Any], bool]:
    """(Hydra overrides, updates merged over the composed config, ``--cfg`` given)."""
    show = "--cfg" in args
    args = [a for a in args if a != "--cfg"]
    updates: dict[str, Any] = {}
    if cmd.split is not None:
        args, updates = _resolve(cmd.split)(args)
    cls = cmd.schema
    pos = _positional_field(cls)
    overrides, bare = [], []
    for a in args:
        (bare if _is_bare(a, pos is not None) else overrides).append(a)
    if bare:
        if pos is None:
            raise ConfigError(f"expected key=value, got {bare[0]!r} (e.g. {cmd.example or 'simfail ' + cmd.name})")
        name, many = pos
        if not many and len(bare) > 1:
            raise ConfigError(f"{cmd.name} takes one {name} argument, got {len(bare)}: {' '.join(bare)}")
        if any(o.partition("=")[0].strip() == name for o in overrides):
            raise ConfigError(f"{name} given twice: as {bare[0]!r} and as {name}=...")
        from simfail.schema import _hints

        is_list = typing.get_origin(_hints(cls).get(name)) in (list, tuple)
        updates[name] = list(bare) if is_list or len(bare) > 1 else bare[0]
    return overrides, updates, show


def build_config(name: str, args: list[str]) -> Any:
    """The checked config object of command ``name`` from its arguments (``--cfg`` ignored)."""
    from simfail.schema import build

    cmd, args = select(get_command(name), args)
    overrides, updates, _ = parse_args(cmd, args)
    return build(cmd.schema, cmd.yaml_name, overrides, command=cmd.name, updates=updates or None)


def shown(cfg: Any) -> dict[str, Any]:
    return cfg.shown() if hasattr(cfg, "shown") else dataclasses.asdict(cfg)


def invoke(name: str, args: list[str]) -> int:
    """Run command ``name`` with ``args``; returns its exit code. Raises SimfailError on bad
    input (the command line turns it into one ``simfail: error:`` line)."""
    cmd, rest = select(get_command(name), args)
    if cmd.config is None:  # a command that parses its own arguments: run(args) -> int
        return int(_resolve(cmd.run)(list(rest)) or 0)
    cfg = build_config(name, args)
    if "--cfg" in args:
        print(json.dumps(shown(cfg), indent=2, default=str))
        return 0
    run: Callable[[Any], int] = _resolve(cmd.run)
    return int(run(cfg) or 0)


# ----------------------------------------------------------------------------- help


def command_help(name: str, args: list[str] | tuple[str, ...] = ()) -> str:
    """``simfail NAME --help``: usage, summary, example and every key from the schema. For a
    command with variants: the variants, or the help of the one ``args`` names first."""
    from simfail.schema import compose, describe, has_yaml

    cmd = get_command(name)
    if cmd.variants is not None:
        known = variants_of(cmd)
        first = next((a for a in args if "=" not in a and not a.startswith("-")), None)
        if first is None or first not in known:
            width = max((len(n) for n in known), default=0) + 2
            lines = [f"usage: simfail {cmd.name} NAME [key=value ...] [--cfg]", "", cmd.summary]
            lines += ["", f"example: {cmd.example}"] if cmd.example else []
            lines += ["", f"{cmd.name}s (simfail {cmd.name} NAME --help lists NAME's settings):"]
            lines += [f"  {n:<{width}}{v.summary}" for n, v in known.items()]
            return "\n".join(lines)
        cmd = known[first]
    if cmd.config is None:  # parses its own arguments: its run function's docstring is the help
        doc = (getattr(_resolve(cmd.run), "__doc__", None) or "").strip()
        return "\n".join([f"usage: simfail {cmd.name} ...", "", cmd.summary, *(["", doc] if doc else [])])
    cls = cmd.schema
    pos = _positional_field(cls)
    usage = f"usage: simfail {cmd.name}"
    if pos is not None:
        usage += f" {pos[0].upper()}" + (" ..." if pos[1] else "")
    usage += " [key=value ...] [--cfg]"
    defaults = None
    if has_yaml(cmd.yaml_name):
        try:
            defaults = compose(cmd.yaml_name, [], schema=cls)
        except ConfigError:
            defaults = None
    groups = ""
    if has_yaml(cmd.yaml_name) and any(f.name == "task" for f in dataclasses.fields(cls)):
        from simfail.schema import _hints, _sub_schema, group_options

        hints = _hints(cls)  # the groups this schema selects: task, and its sub-config fields
        listed = [g for g in ("task", "failures", "render", "dataset")
                  if g == "task" or (g in hints and _sub_schema(hints[g]) is not None)]
        groups = ("\nconfig groups (key=option): "
                  + "; ".join(f"{g}: {', '.join(group_options(g))}" for g in listed)
                  + ("\n  failures=[op1,op2] picks operators by name (see simfail list)" if "failures" in listed else "")
                  + "\n")
    lines = [usage, "", cmd.summary]
    if cmd.example:
        lines += ["", f"example: {cmd.example}"]
    lines += [groups.rstrip("\n")] if groups else []
    lines += ["", "settings (key  (type; default; range; example)):", describe(cls, defaults),
              "", "--cfg prints the checked settings as JSON and exits without doing any work."]
    return "\n".join(lines)


def overview() -> str:
    """``simfail --help``: every command with its summary and example."""
    width = max(len(n) for n in COMMANDS) + 2
    lines = ["usage: simfail COMMAND [ARG ...] [key=value ...]", "", "commands:"]
    for c in COMMANDS.values():
        lines.append(f"  {c.name:<{width}}{c.summary}")
        if c.example:
            lines.append(f"  {'':<{width}}e.g. {c.example}")
    lines += ["", "simfail COMMAND --help lists the command's settings: type, default, range and an example.",
              "--cfg (after a command) prints the checked settings and exits."]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- built-in commands

for _c in (
    Command("generate", "write counterfactual failure groups as a LeRobot v3.0 dataset",
            "simfail.config:GenerateConfig", "simfail.dataset_commands:run_generate",
            example="simfail generate task=pick_place groups=10 seed=0 out=DIR failures=[drop,collision]"),
    Command("bench", "measure episodes/hour against a bound: the slowest resource (render, physics, encoder) "
            "alone on the whole machine",
            "simfail.config:BenchConfig", "simfail.dataset_commands:run_bench", split="simfail.policy.bench:split_args",
            example="simfail bench groups=2 (mode=rollout: recording a policy against generate)"),
    Command("rates", "expert success and failure realization rates, physics only",
            "simfail.config:GenerateConfig", "simfail.dataset_commands:run_rates", config_name="generate",
            example="simfail rates groups=100"),
    Command("merge", "join datasets generated separately into one (indices, stats and videos rewritten)",
            "simfail.dataset.merge:MergeConfig", "simfail.dataset.merge:run",
            example="simfail merge DIR1 DIR2 out=DIR"),
    Command("scale-report", "measure per-worker episodes/hour and the merge cost, project a million episodes",
            "simfail.scale.report:ScaleReportConfig", "simfail.scale.report:run",
            example="simfail scale-report groups=6 ray.workers=1 ray.cpus_per_worker=2 update=[docs/scale.md]"),
    Command("check", "verify a written dataset (--benchmark ID: a benchmark copy against its published hashes)",
            "simfail.config:CheckConfig", "simfail.dataset_commands:run_check", split="simfail.benchmark.check:split_args",
            example="simfail check DIR"),
    Command("list", "list tasks and their failure operators", "simfail.config:ListConfig",
            "simfail.dataset_commands:run_list", example="simfail list"),
    Command("evaluate", "stress-test a reward model on a dataset", "simfail.stress.settings:EvaluateConfig",
            "simfail.stress.commands:evaluate_main", split="simfail.stress.commands:split_model_args",
            example="simfail evaluate model=oracle data=DIR out=REPORT"),
    Command("compare", "put several evaluate reports side by side", "simfail.stress.settings:CompareConfig",
            "simfail.stress.commands:compare_main", example="simfail compare REPORT1 REPORT2 out=DIR"),
    Command("paired", "paired bootstrap of the accuracy difference of two evaluate reports (B - A)",
            "simfail.learn.settings:PairedConfig", "simfail.learn.paired:run",
            example="simfail paired REPORT_A REPORT_B n_boot=10000"),
    Command("train-reward", "train the rewind reward model on a dataset", "simfail.learn.settings:TrainRewardConfig",
            "simfail.learn.commands:train_main", example="simfail train-reward data=DIR out=MODEL_DIR"),
    Command("realism", "edit a dataset's videos toward photorealism", "simfail.realism.settings:RealismConfig",
            "simfail.realism.commands:realism_main", example="simfail realism data=DIR out=DIR2 model=PATH"),
    Command("rollout", "run policies closed-loop in the scenes and label their episodes as a dataset",
            "simfail.policy.rollout:RolloutConfig", "simfail.policy.rollout:rollout_main",
            split="simfail.policy.rollout:split_policy_args",
            example="simfail rollout policy=expert task=pick_place seeds=2 samples=2 out=DIR"),
    Command("train-policy", "behaviour cloning (bc) on a dataset's successful episodes",
            "simfail.policy.bc_train:TrainPolicyConfig", "simfail.policy.bc_train:run",
            example="simfail train-policy data=DIR out=POLICY_DIR (then simfail rollout policy=bc "
                    "policy.checkpoint=POLICY_DIR)"),
    Command("calibrate", "calibrate the realism fidelity thresholds on synthetic edits of a dataset",
            "simfail.realism.settings:CalibrateConfig", "simfail.realism.calibrate:run",
            example="simfail calibrate DIR out=report.json"),
    Command("render-speed", "render speed (view-frames/s) of backend:preset pairs on one recorded episode",
            "simfail.render.speed:RenderSpeedConfig", "simfail.render.speed:run",
            example="simfail render-speed size=128 runs=[egl:fast,egl:lab,warp:fast]"),
    Command("render-preview", "a PNG of one scene per render preset (rows) and view (columns)",
            "simfail.render.preview:RenderPreviewConfig", "simfail.render.preview:run",
            example="simfail render-preview out=preview.png size=256"),
    Command("import-real", "import real robot rollouts with human labels (RoboArena dump, LeRobot release) as a dataset",
            "simfail.dataset.real.commands:ImportRealConfig", "simfail.dataset.real.commands:run",
            example="simfail import-real SRC format=roboarena out=DIR"),
    Command("experiment", "run a named experiment (simfail experiment --help lists them)", None, None,
            example="simfail experiment real_plus_sim real=DIR sim=DIR out=DIR",
            variants="simfail.stress.experiments:commands"),
    Command("benchmark", "the frozen reward-model benchmark (simfail benchmark --help lists its sub-commands: build ...)",
            None, None, example="simfail benchmark build version=v1 out=DIR size=128",
            variants="simfail.benchmark:commands"),
    Command("replay", "replay demonstrations (a LeRobot dataset of actions) in their scenes, verify them against "
            "their sim.qpos and branch counterfactual variants from them", "simfail.replay.command:ReplayConfig",
            "simfail.replay.command:replay_main", split="simfail.replay.command:split_args",
            example="simfail replay demos=DIR failures=[gripper_release,push] out=DIR2"),
    Command("view", "browse a dataset in a web browser: serve it, export a folder (out=) or draw the figure (figure=)",
            "simfail.viewer.commands:ViewConfig", "simfail.viewer.commands:run",
            example="simfail view DIR out=HTML_DIR"),
):
    register(_c)
