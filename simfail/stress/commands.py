"""``simfail evaluate`` and ``simfail compare``.

``simfail evaluate key=value ...`` scores a reward model on a simfail dataset and writes a
report folder (:mod:`simfail.stress.report`). Settings are composed with Hydra from
``configs/evaluate.yaml`` (see that file for every key and its default); the main ones:

``model=NAME``
    a registered model (``oracle``, ``progress_only``, ``gvl``, ...) or ``package.module:Class``.
``model.KEY=VALUE``
    one keyword argument of the model's constructor; ``VALUE`` is read as YAML
    (``model.mode=progress``, ``model.max_frames=16``, ``model.views=[left,wrist]``).
``model_kwargs=JSON``
    all keyword arguments at once as a JSON (or YAML flow) object, e.g.
    ``model_kwargs='{"mode": "progress"}'``; ``model.KEY`` entries are merged over it.
``data=DIR``
    the dataset (required). ``out=DIR``: the report folder, default
    ``DATA/reports/<model>`` (plus ``-key=value`` of the model arguments when there are any).
``returns=sum|last|mean``, ``bootstrap=1000``, ``seed=0``
    return definition of dense rewards, bootstrap replicates, seed.
``exclude_unseen=true``
    leave out episodes with a failure no camera view shows (``visible_in: []``) and the
    preference pairs they are in; the count is reported either way (:mod:`simfail.stress.unseen`).

Outputs are cached per model configuration and episode under ``<out>/cache/`` (see
:mod:`simfail.stress.runner`), so a rerun only scores the episodes still missing (after an
interruption, or with ``retry_errors=true`` those that failed; request errors of remote models,
``*RequestError``, are never cached as results and always retried). Arguments whose name looks
like a credential (``api_key``, ``token``, ...) are used but never written: reports, cache
headers and folder names show ``***``. ``--cfg`` prints the composed settings and exits.

``simfail compare REPORT1 REPORT2 ... [out=DIR]`` reads several report folders (or their
``metrics.json``) and writes ``compare.txt``, ``compare.json``, ``compare.html``,
``compare.png`` and ``compare_by_failure.png`` to ``out`` (default: ``compare/`` next to the
first report), and prints the table.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

from simfail.config import parse_groups
from simfail.errors import ConfigError, UnknownNameError

from . import metrics as M
from .report import VIDEO_MODES, compare_reports, format_table, summary_rows, write_report

__all__ = ["cmd_compare", "cmd_evaluate", "evaluate_settings", "public_kwargs", "run_evaluate"]


def _base_keys() -> dict[str, Any]:
    from simfail.cli import config_keys

    return config_keys("evaluate")


def _yaml_value(text: str, what: str) -> Any:
    import yaml

    try:
        return yaml.safe_load(text) if text.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"cannot read the value of {what}: {str(exc).splitlines()[0]}") from exc


def _split_args(args: list[str]) -> tuple[list[str], dict[str, Any], bool]:
    """Hydra overrides, model keyword arguments, and whether ``--cfg`` was given."""
    base = _base_keys()
    overrides: list[str] = []
    kwargs: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    show = False
    for a in args:
        if a == "--cfg":
            show = True
            continue
        key, sep, value = a.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"expected key=value, got {a!r} (e.g. simfail evaluate model=oracle data=DIR)")
        if key == "model_kwargs":
            try:
                obj = json.loads(value)
            except ValueError:
                obj = _yaml_value(value, "model_kwargs")
            if obj is None:
                obj = {}
            if not isinstance(obj, dict):
                raise ConfigError(f"model_kwargs must be a JSON object, got {value!r}")
            kwargs.update(obj)
            continue
        if key.startswith("model."):
            name = key[len("model.") :]
            if not name.isidentifier():
                raise ConfigError(f"bad model argument name {name!r} in {a!r}")
            extra[name] = _yaml_value(value, key)
            continue
        top = key.lstrip("+").split(".", 1)[0]
        if top not in base:
            raise UnknownNameError("evaluate setting", top, list(base))
        overrides.append(a)
    kwargs.update(extra)
    return overrides, kwargs, show


def evaluate_settings(args: list[str]) -> dict[str, Any]:
    """Composed and checked settings of ``simfail evaluate`` (``model_kwargs`` merged)."""
    from simfail.cli import compose

    overrides, kwargs, _ = _split_args(args)
    cfg = compose("evaluate", overrides)
    cfg["model_kwargs"] = {**(cfg.get("model_kwargs") or {}), **kwargs}
    if not cfg.get("model"):
        raise ConfigError("model= is required (a registered name or package.module:Class)")
    cfg["model"] = str(cfg["model"])
    if cfg.get("returns") not in M.RETURN_MODES:
        raise UnknownNameError("return mode", str(cfg.get("returns")), M.RETURN_MODES)
    if cfg.get("video") not in VIDEO_MODES:
        raise UnknownNameError("video mode", str(cfg.get("video")), VIDEO_MODES)
    for key, lo in (("bootstrap", 0), ("seed", 0), ("batch_size", 1), ("curves", 0)):
        v = cfg.get(key)
        if isinstance(v, bool) or not isinstance(v, int) or v < lo:
            raise ConfigError(f"{key} must be an integer >= {lo}, got {v!r}")
    if cfg.get("max_groups") is not None and (not isinstance(cfg["max_groups"], int) or cfg["max_groups"] < 1):
        raise ConfigError(f"max_groups must be a positive integer or null, got {cfg['max_groups']!r}")
    if not isinstance(cfg.get("exclude_unseen", False), bool):
        raise ConfigError(f"exclude_unseen must be true or false, got {cfg.get('exclude_unseen')!r}")
    if not 0.0 < float(cfg["confidence"]) < 1.0:
        raise ConfigError(f"confidence must be in (0, 1), got {cfg['confidence']!r}")
    ex = cfg.get("examples") or {}
    for key in ("references", "failures", "frames"):
        if not isinstance(ex.get(key), int) or ex[key] < (2 if key == "frames" else 0):
            raise ConfigError(f"examples.{key} must be an integer >= {2 if key == 'frames' else 0}, got {ex.get(key)!r}")
    return cfg


_SECRET = re.compile(r"api_?key|token|secret|password|passwd|auth", re.IGNORECASE)


def public_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Model arguments as written to reports, cache headers and folder names: values of
    arguments whose name looks like a credential (``api_key``, ``token``, ...) become ``"***"``."""
    return {k: ("***" if _SECRET.search(str(k)) else v) for k, v in kwargs.items()}


def _default_out(data: Path, cfg: dict[str, Any]) -> Path:
    name = cfg["model"].replace(":", "_")
    shown = {k: v for k, v in cfg["model_kwargs"].items() if not _SECRET.search(str(k))}
    if shown:
        name += "-" + "-".join(f"{k}={v}" for k, v in sorted(shown.items()))
    name = re.sub(r"[^A-Za-z0-9_.=-]+", "_", name).strip("_")[:120] or "model"
    return data / "reports" / name


def run_evaluate(cfg: dict[str, Any]) -> tuple[dict[str, Any], Path]:
    """Run a composed ``evaluate`` configuration; returns ``(metrics, report folder)``."""
    from simfail.dataset import layout as L
    from simfail.dataset.reader import SimfailDataset

    from .dataset_adapter import DatasetEpisodes
    from .protocol import load_model
    from .runner import ScoreCache, collect_metrics, dataset_fingerprint, model_key, score_dataset

    try:
        model = load_model(cfg["model"], **cfg["model_kwargs"])
    except TypeError as exc:
        raise ConfigError(f"model {cfg['model']!r} does not accept the arguments {public_kwargs(cfg['model_kwargs'])}: {exc}") from exc
    if cfg.get("data") in (None, ""):
        raise ConfigError("data=DIR is required (a simfail dataset folder)")
    data = Path(str(cfg["data"]))
    ds = SimfailDataset(data)
    out = Path(str(cfg["out"])) if cfg.get("out") not in (None, "") else _default_out(data, cfg)
    if (out / L.INFO_PATH).is_file() or (out / L.MARKER_NAME).is_file():
        raise ConfigError(f"out={out} is a dataset folder; choose another report folder")
    if out.exists() and not out.is_dir():
        raise ConfigError(f"out={out} exists and is not a folder")

    groups = ds.groups()
    episodes = None
    keep = list(groups)
    chosen = parse_groups(cfg.get("groups"), "groups")
    if chosen is not None:
        missing = sorted(set(chosen) - set(groups))
        if missing:
            raise ConfigError(f"groups: {missing[:10]} are not in {data} (it has groups {min(groups)}..{max(groups)})")
        keep = [g for g in keep if g in set(chosen)]
    if cfg.get("max_groups"):
        keep = keep[: int(cfg["max_groups"])]
    if chosen is not None or cfg.get("max_groups"):
        episodes = sorted(ep for g in keep for ep in groups[g])
    # failures no camera shows: always counted; left out with exclude_unseen=true
    from .unseen import count_unseen

    considered = episodes if episodes is not None else list(range(ds.num_episodes))
    kept, unseen = count_unseen(ds, considered, exclude=bool(cfg.get("exclude_unseen")))
    if unseen.excluded and unseen.episodes:
        if not kept:
            raise ConfigError(f"exclude_unseen=true leaves no episode of {data} to score")
        episodes = kept
    ex = cfg["examples"]
    req = model.requirements
    adapter = DatasetEpisodes(
        ds, req, episodes=episodes, seed=cfg["seed"], n_references=ex["references"],
        n_failure_examples=ex["failures"], example_frames=ex["frames"],
    )
    inputs: dict[str, Any] = {}
    if req.wants_goal_image or req.wants_examples:
        inputs["seed"] = cfg["seed"]
    if req.wants_examples:
        inputs["examples"] = ex
    shown = public_kwargs(cfg["model_kwargs"])
    key = model_key(cfg["model"], model.name, shown, req, inputs)
    fingerprint = dataset_fingerprint(ds)
    cache = ScoreCache(
        out / "cache" / f"{key}.jsonl",
        {"model_key": key, "model": cfg["model"], "kwargs": shown, "dataset_fingerprint": fingerprint},
        enabled=bool(cfg.get("cache", True)),
    )
    if cache.stale_moved is not None:
        print(f"simfail: note: the score cache belonged to another dataset; moved it to {cache.stale_moved}", file=sys.stderr)
    drun = score_dataset(
        model, adapter, cache=cache, model_key=key, return_mode=cfg["returns"], batch_size=cfg["batch_size"],
        retry_errors=bool(cfg.get("retry_errors")), progress=bool(cfg.get("progress", True)),
    )
    info = {
        "unseen": unseen.to_dict(),
        "model": {"spec": cfg["model"], "name": model.name, "kwargs": shown},
        "dataset": {
            "root": str(data.resolve()),
            "n_episodes": ds.num_episodes,
            "n_groups": len(groups),
            "n_episodes_scored": len(adapter),
            "fps": ds.fps,
            "views": ds.views,
            "fingerprint": fingerprint,
        },
        "settings": {k: v for k, v in cfg.items() if k not in ("model", "model_kwargs")},
    }
    metrics = collect_metrics(
        drun, n_boot=cfg["bootstrap"], confidence=float(cfg["confidence"]), seed=cfg["seed"], tie_tol=float(cfg["tie_tol"]),
        timing_threshold=float(cfg["timing_threshold"]), min_severity=float(cfg["min_severity"]), info=info,
    )
    write_report(out, metrics, drun, n_curves=cfg["curves"], video=cfg["video"], seed=cfg["seed"])
    return metrics, out


def cmd_evaluate(args: list[str]) -> int:
    """``simfail evaluate key=value ...``: score a model, write the report, print a summary."""
    _, _, show = _split_args(args)
    cfg = evaluate_settings([a for a in args if a != "--cfg"])
    if show:
        print(json.dumps({**cfg, "model_kwargs": public_kwargs(cfg["model_kwargs"])}, indent=2, default=str))
        return 0
    metrics, out = run_evaluate(cfg)
    print(format_table(["metric", "value"], summary_rows(metrics)))
    print(f"report: {out}  (open {out / 'index.html'})")
    return 0


def cmd_compare(args: list[str]) -> int:
    """``simfail compare REPORT1 REPORT2 ... [out=DIR]``."""
    paths: list[str] = []
    out: str | None = None
    for a in args:
        key, sep, value = a.partition("=")
        if sep and key == "out":
            out = value
        elif sep and "/" not in key and not Path(a).exists():
            raise UnknownNameError("compare setting", key, ["out"])
        else:
            paths.append(a)
    if not paths:
        raise ConfigError("usage: simfail compare REPORT1 REPORT2 ... out=DIR")
    out_dir = Path(out) if out else Path(paths[0]).resolve().parent / "compare"
    text, folder = compare_reports(paths, out_dir)
    print(text)
    print(f"comparison: {folder}  (open {folder / 'compare.html'})")
    return 0
