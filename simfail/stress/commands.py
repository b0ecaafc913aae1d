"""``simfail evaluate`` and ``simfail compare``.

``simfail evaluate key=value ...`` scores a reward model on a simfail dataset and writes a
report folder (:mod:`simfail.stress.report`). Settings are composed with Hydra from
``configs/evaluate.yaml`` against :class:`simfail.stress.settings.EvaluateConfig` (``simfail evaluate
--help`` lists every key with its type, default and range); the main ones:

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
from simfail.errors import ConfigError

from .report import compare_reports, format_table, summary_rows, write_report

__all__ = ["cmd_compare", "cmd_evaluate", "compare_main", "evaluate_main", "evaluate_settings", "public_kwargs",
           "run_evaluate", "score_evaluate", "split_model_args"]


def _yaml_value(text: str, what: str) -> Any:
    import yaml

    try:
        return yaml.safe_load(text) if text.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"cannot read the value of {what}: {str(exc).splitlines()[0]}") from exc


def _yaml_name_list(value: str, key: str, expected: str) -> list[str]:
    """``KEY=VALUE`` read as a YAML list of strings: ``[a,b]``, a single ``a``, or nothing
    (``[]``); anything else raises ``ConfigError("KEY must be a list of EXPECTED, got VALUE")``."""
    v = _yaml_value(value, key)
    v = [] if v is None else [v] if isinstance(v, str) else v
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise ConfigError(f"{key} must be a list of {expected}, got {value!r}")
    return v


def split_model_args(args: list[str]) -> tuple[list[str], dict[str, Any]]:
    """Take ``model.KEY=VALUE`` (VALUE read as YAML) and ``model_kwargs=JSON`` out of the
    arguments: (the other arguments, ``{"model_kwargs": {...}}`` with ``model.KEY`` merged over
    ``model_kwargs``). The registry merges it over the composed settings."""
    rest: list[str] = []
    kwargs: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for a in args:
        key, sep, value = a.partition("=")
        key = key.strip()
        if sep and key == "model_kwargs":
            try:
                obj = json.loads(value)
            except ValueError:
                obj = _yaml_value(value, "model_kwargs")
            if obj is None:
                obj = {}
            if not isinstance(obj, dict):
                raise ConfigError(f"model_kwargs must be a JSON object, got {value!r}")
            kwargs.update(obj)
        elif sep and key.startswith("model."):
            name = key[len("model."):]
            if not name.isidentifier():
                raise ConfigError(f"bad model argument name {name!r} in {a!r}")
            extra[name] = _yaml_value(value, key)
        else:
            rest.append(a)
    kwargs.update(extra)
    return rest, ({"model_kwargs": kwargs} if kwargs else {})


def evaluate_settings(args: list[str]) -> dict[str, Any]:
    """Composed and checked settings of ``simfail evaluate`` (``model_kwargs`` merged), as a dict."""
    import dataclasses

    from simfail.commands import build_config

    return dataclasses.asdict(build_config("evaluate", args))


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
    from .runner import collect_metrics

    drun, info, out = score_evaluate(cfg)
    metrics = collect_metrics(
        drun, n_boot=cfg["bootstrap"], confidence=float(cfg["confidence"]), seed=cfg["seed"], tie_tol=float(cfg["tie_tol"]),
        timing_threshold=float(cfg["timing_threshold"]), min_severity=float(cfg["min_severity"]), info=info,
    )
    write_report(out, metrics, drun, n_curves=cfg["curves"], video=cfg["video"], seed=cfg["seed"])
    return metrics, out


def score_evaluate(cfg: dict[str, Any], accept: Any = None) -> tuple[Any, dict[str, Any], Path]:
    """The scoring half of ``simfail evaluate`` (also the one scoring path of ``simfail
    benchmark run``): load the model, select the episodes, score them through the cache.
    Returns ``(DatasetRun, info, report folder)``; ``info["model"]["identity"]`` and
    ``info["dataset"]["content_hash"]`` name what the scores depend on. ``accept(model)``, when
    given, is called right after loading (it raises ConfigError for a model the caller cannot
    use), before anything is scored or written."""
    from simfail.dataset import layout as L
    from simfail.dataset.reader import SimfailDataset

    from .dataset_adapter import DatasetEpisodes
    from .protocol import load_model
    from .runner import ScoreCache, dataset_fingerprint, model_key, score_dataset

    try:
        model = load_model(cfg["model"], **cfg["model_kwargs"])
    except TypeError as exc:
        raise ConfigError(f"model {cfg['model']!r} does not accept the arguments {public_kwargs(cfg['model_kwargs'])}: {exc}") from exc
    if accept is not None:
        accept(model)
    if cfg.get("data") in (None, ""):
        raise ConfigError("data=DIR is required (a simfail dataset folder)")
    if isinstance(cfg["data"], (list, tuple)) or cfg.get("split") not in (None, ""):
        raise ConfigError("several datasets (data=[A,B]) or split= go through run_evaluate_multi")
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
    from .identity import dataset_content_hash, model_identity

    identity = model_identity(cfg["model"], model, shown)
    key = model_key(cfg["model"], model.name, shown, req, inputs, weights_hash=identity["weights_hash"])
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
        "model": {"spec": cfg["model"], "name": model.name, "kwargs": shown, "identity": identity},
        "dataset": {
            "root": str(data.resolve()),
            "n_episodes": ds.num_episodes,
            "n_groups": len(groups),
            "n_episodes_scored": len(adapter),
            "fps": ds.fps,
            "views": ds.views,
            "fingerprint": fingerprint,
            "content_hash": dataset_content_hash(data),
        },
        "settings": {k: v for k, v in cfg.items() if k not in ("model", "model_kwargs")},
    }
    return drun, info, out


def evaluate_main(cfg: Any) -> int:
    """``run`` of ``simfail evaluate``: score a model, write the report(s), print a summary.
    Several datasets (``data=[SIM,REAL]``) or ``split=`` go through :mod:`.multi` (one report
    per source and the pooled metrics)."""
    import dataclasses

    d = dataclasses.asdict(cfg)
    if isinstance(d.get("data"), (list, tuple)) or d.get("split") not in (None, ""):
        from .multi import multi_rows, run_evaluate_multi

        data = d["data"] if isinstance(d.get("data"), (list, tuple)) else [d["data"]]
        result, out = run_evaluate_multi({**d, "data": list(data)})
        print(format_table(["metric", "value"], multi_rows(result)))
        print(f"reports: {out}/<source>/  (pooled: {out / 'metrics.json'}, {out / 'summary.txt'})")
        return 0
    metrics, out = run_evaluate(d)
    print(format_table(["metric", "value"], summary_rows(metrics)))
    print(f"report: {out}  (open {out / 'index.html'})")
    return 0


def compare_main(cfg: Any) -> int:
    """``run`` of ``simfail compare REPORT1 REPORT2 ... [out=DIR]``."""
    paths = list(cfg.reports)
    out_dir = Path(cfg.out) if cfg.out else Path(paths[0]).resolve().parent / "compare"
    text, folder = compare_reports(paths, out_dir)
    print(text)
    print(f"comparison: {folder}  (open {folder / 'compare.html'})")
    return 0


def cmd_evaluate(args: list[str]) -> int:
    """``simfail evaluate key=value ...`` (raises SimfailError on bad input)."""
    from simfail.commands import invoke

    return invoke("evaluate", args)


def cmd_compare(args: list[str]) -> int:
    """``simfail compare REPORT1 REPORT2 ... [out=DIR]`` (raises SimfailError on bad input)."""
    from simfail.commands import invoke

    return invoke("compare", args)
