"""``simfail`` command line: ``generate``, ``bench``, ``check``, ``list``.

Configuration is composed with Hydra from the ``configs`` package (config groups ``task``,
``failures``, ``render``, ``dataset``) and the ``key=value`` overrides after the command.
Every error a user can cause is printed as one ``simfail: error: ...`` line (exit code 2);
nothing is written when the configuration is bad.
"""

from __future__ import annotations

import json
import os
import sys
from importlib import resources
from typing import Any

from simfail.errors import ConfigError, SimfailError, UnknownNameError

USAGE = """usage: simfail COMMAND [key=value ...]

commands:
  generate   write counterfactual failure groups as a LeRobot v3.0 dataset
             e.g. simfail generate task=pick_place groups=10 seed=0 out=DIR failures=[drop,collision]
  bench      measure episodes/hour against a bound: the slowest resource (render, physics, encoder) alone
             e.g. simfail bench groups=2
  rates      expert success and failure realization rates, physics only: simfail rates groups=100
  merge      join datasets generated separately: simfail merge DIR1 DIR2 ... out=DIR
  check      verify a written dataset: simfail check DIR (or data=DIR)
  list       list tasks and their failure operators
  evaluate   stress-test a reward model on a dataset: simfail evaluate model=oracle data=DIR out=REPORT
  compare    put several evaluate reports side by side: simfail compare REPORT1 REPORT2 ... out=DIR
  train-reward  train the rewind reward model on a dataset: simfail train-reward data=DIR out=MODEL_DIR
  realism    edit a dataset's videos toward photorealism: simfail realism data=DIR out=DIR2 model=PATH
  --cfg      (after a command) print the composed config and exit
"""


def _group_options(group: str) -> list[str]:
    folder = resources.files("simfail.configs").joinpath(group)
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def _rewrite_overrides(overrides: list[str]) -> list[str]:
    """``failures=[a,b]`` (or a single operator name) selects operators, not a config file."""
    out = []
    for o in overrides:
        key, sep, value = o.partition("=")
        if sep and key == "failures":
            v = value.strip()
            if v.startswith("[") or v not in _group_options("failures"):
                names = v.strip("[]")
                out.append(f"failures.names=[{names}]")
                continue
        out.append(o)
    return out


def compose(config_name: str, overrides: list[str]) -> dict[str, Any]:
    """Compose a Hydra config from the packaged ``configs`` and return it as a plain dict."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    overrides = _rewrite_overrides(overrides)
    for o in overrides:
        key, sep, value = o.partition("=")
        if sep and key in ("task", "render", "dataset"):
            opts = _group_options(key)
            if value not in opts:
                kind = "task" if key == "task" else f"{key} preset"
                raise UnknownNameError(kind, value, opts)
    try:
        with initialize_config_module(config_module="simfail.configs", version_base="1.3"):
            cfg = hydra_compose(config_name=config_name, overrides=overrides)
        return OmegaConf.to_container(cfg, resolve=True)
    except (HydraException, OmegaConfBaseException) as exc:
        msg = str(exc).splitlines()[0]
        raise ConfigError(f"bad configuration: {msg}") from exc


def config_keys(config_name: str) -> dict[str, Any]:
    """Top-level keys (with defaults) of a packaged primary config ``configs/<name>.yaml``."""
    import yaml

    return yaml.safe_load(resources.files("simfail.configs").joinpath(f"{config_name}.yaml").read_text()) or {}


def checked_overrides(args: list[str], config_name: str, command: str, example: str) -> tuple[list[str], bool]:
    """A command's ``key=value`` arguments as Hydra overrides, every key checked against the
    command's config (a typo is one clear error), and whether ``--cfg`` was given."""
    base = config_keys(config_name)
    overrides, show = [], False
    for a in args:
        if a == "--cfg":
            show = True
            continue
        key, sep, _ = a.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"expected key=value, got {a!r} (e.g. {example})")
        top = key.lstrip("+").split(".", 1)[0]
        if top not in base:
            raise UnknownNameError(f"{command} setting", top, list(base))
        overrides.append(a)
    return overrides, show


def _generate_config(overrides: list[str]):
    from simfail.config import from_dict

    d = compose("generate", overrides)
    d["task"] = d["task"]["name"] if isinstance(d.get("task"), dict) else d.get("task")
    return from_dict(d)


def cmd_generate(overrides: list[str]) -> int:
    from simfail.generate import run
    from simfail.report import summary_table

    cfg = _generate_config(overrides)
    summary = run(cfg)
    print(summary_table(summary))
    if "workers" in summary:
        from simfail.scale.sharded import worker_table

        print(worker_table(summary))
    return 0


def _bench_options(overrides: list[str]) -> tuple[list[str], int, str | None]:
    """Split bench's own keys (``repeats=N``, ``json=PATH``) from the generate overrides."""
    rest, repeats, json_path = [], 1, None
    for o in overrides:
        key, sep, value = o.partition("=")
        if sep and key == "repeats":
            try:
                repeats = int(value)
            except ValueError:
                raise ConfigError(f"repeats must be a whole number >= 1, got {value!r}") from None
            if repeats < 1:
                raise ConfigError(f"repeats must be a whole number >= 1, got {value!r}")
        elif sep and key == "json":
            if not value:
                raise ConfigError("json= needs a file path")
            json_path = value
        else:
            rest.append(o)
    return rest, repeats, json_path


def cmd_bench(overrides: list[str]) -> int:
    from simfail.bench import BenchConfig, bench_table, run_bench

    rest, repeats, json_path = _bench_options(overrides)
    cfg = _generate_config(rest)
    if cfg.task == "all":
        raise ConfigError("bench measures one task at a time: pass task=<name> (see simfail list)")
    if json_path is not None and not os.access(os.path.dirname(os.path.abspath(json_path)), os.W_OK):
        raise ConfigError(f"json: cannot write to {os.path.dirname(os.path.abspath(json_path))}")
    result = run_bench(BenchConfig(generate=cfg, repeats=repeats))
    print(bench_table(result))
    if json_path is not None:
        from simfail.learn.checkpoint import atomic_write_bytes

        atomic_write_bytes(json_path, (json.dumps(result.to_dict(), indent=2) + "\n").encode())
    return 0


def cmd_rates(overrides: list[str]) -> int:
    from dataclasses import replace

    from simfail.generate import run_tasks, task_config, validate_failures
    from simfail.core.task import get_task
    from simfail.rates import measure_rates, rates_overview, rates_table

    cfg = _generate_config(overrides)
    validate_failures(cfg)
    results = []
    for name in run_tasks(cfg):
        tcfg = replace(task_config(cfg, get_task(name)), task=name)
        r = measure_rates(tcfg, progress=cfg.progress)
        results.append(r)
        print(rates_table(r))
    if len(results) > 1:
        print(rates_overview(results))
    return 0


def cmd_check(args: list[str]) -> int:
    from simfail.dataset.reader import SimfailDataset

    if len(args) != 1:
        raise ConfigError("usage: simfail check DIR (or data=DIR)")
    path = args[0][len("data="):] if args[0].startswith("data=") else args[0]
    problems = SimfailDataset(path).check()
    for p in problems:
        print(f"problem: {p}")
    print("ok" if not problems else f"{len(problems)} problem(s)")
    return 0 if not problems else 1


def cmd_list(_: list[str]) -> int:
    from simfail.core.task import get_task, task_names

    for name in task_names():
        task = get_task(name)
        print(f"{name}: {task.description}")
        for pname, p in task.perturbations().items():
            print(f"  {pname:<20} {p.description}  (detected as: {', '.join(p.intended)})")
    return 0


def cmd_evaluate(args: list[str]) -> int:
    from simfail.stress.commands import cmd_evaluate as run_evaluate

    return run_evaluate(args)


def cmd_compare(args: list[str]) -> int:
    from simfail.stress.commands import cmd_compare as run_compare

    return run_compare(args)


def cmd_train_reward(args: list[str]) -> int:
    from simfail.learn.commands import cmd_train_reward as run_train

    return run_train(args)


def cmd_realism(args: list[str]) -> int:
    from simfail.realism.commands import cmd_realism as run_realism

    return run_realism(args)


def cmd_merge(args: list[str]) -> int:
    from simfail.dataset.merge import parse_args, run

    return run(parse_args(args))


COMMANDS = {"generate": cmd_generate, "merge": cmd_merge, "bench": cmd_bench, "check": cmd_check, "list": cmd_list, "rates": cmd_rates,
            "evaluate": cmd_evaluate, "compare": cmd_compare, "train-reward": cmd_train_reward,
            "realism": cmd_realism}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0
    cmd, rest = argv[0], argv[1:]
    if cmd not in COMMANDS:
        print(f"simfail: error: unknown command {cmd!r}; commands: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    try:
        if "--cfg" in rest and cmd in ("generate", "bench"):
            from dataclasses import asdict

            from simfail.generate import validate_failures

            cfg = _generate_config([r for r in rest if r != "--cfg"])
            validate_failures(cfg)  # unknown failure names are errors here too
            print(json.dumps(asdict(cfg), indent=2))
            return 0
        return COMMANDS[cmd](rest)
    except SimfailError as exc:
        print(f"simfail: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("simfail: interrupted; rerun with resume=true to continue", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
