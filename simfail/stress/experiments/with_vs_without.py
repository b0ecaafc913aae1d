"""``with_vs_without``: does failure data help a learned reward model, at an equal budget?

``simfail experiment with_vs_without out=DIR`` runs, from nothing, the whole experiment whose
table ``docs/experiments.md`` shows:

1. Data (:mod:`.wvw_data`): per category, training scenes with their scripted variants, extra
   expert scenes, held-out test scenes, and closed-loop policy rollouts on the training and
   test scenes. Operators in ``holdout_operators`` are never trained on.
2. Arms at an equal budget (:mod:`.budget`): ``expert_only`` vs ``with_failures``, and
   ``scripted`` vs ``closed_loop`` failures; within a comparison both arms train on the same
   number of distinct episodes per category, for the same optimizer steps (``epochs x
   batches_per_epoch`` batches of ``batch_size`` clips), once per training seed in ``seeds``.
   Leave-one-category-out: for each category in ``loco``, both main arms again without it.
3. Every model is trained (:mod:`simfail.learn`: the ``rewind`` network) and scored with
   ``simfail evaluate`` on the test scenes (held-out scenes), on the pairs (expert, held-out
   operator variant) of the test scenes (held-out operators), on the closed-loop test rollouts,
   and (leave-one-category-out) on the left-out category's test scenes.
4. Each comparison's margin ``A_b - A_a`` pooled over training seeds, with a paired
   cluster-bootstrap interval over test groups (:mod:`.pooled`), as a table
   (``results.txt``, printed), JSON (``results.json``) and a plot (``margins.png``).

Resumable: datasets move into place when complete, each model (``models/<spec hash>/``) is
reused when its ``spec.json`` (training episodes, settings, seed) matches, and each
evaluation's per-episode returns are cached atomically in ``evals/<model hash>/``, keyed by the
hash of the model's weights and of the dataset's files. A killed run
re-run with the same ``out=`` and settings redoes only what is missing.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, List, Optional

from simfail.errors import ConfigError, OutputDirError

from . import Experiment, register_experiment
from .budget import Arm, check_equal_budget, leave_out, scripted_vs_closed_arms, with_vs_without_arms
from .wvw_report import plot_margins, table

__all__ = ["WithVsWithoutConfig", "run", "table", "group_counts", "Job"]

CATEGORIES = ["open_close", "pick_place", "pour", "push_pull", "reorient", "stack", "tool_use"]
SETTINGS_NAME = "experiment.json"
#: settings that do not change the results (left out of experiment.json's comparison)
RUNTIME_KEYS = ("out", "overwrite", "progress", "threads")
#: settings the datasets in ``out/data`` depend on (a resumed run must keep them)
DATA_KEYS = ("data", "operators", "holdout_operators", "train_groups", "test_groups", "train_seed", "test_seed", "render_size", "fps",
             "closed_loop_policy", "closed_loop_args", "closed_loop_samples")


def _f(default: Any, help_: str, example: str, factory: Any = None, **meta: Any) -> Any:
    md = {"help": help_, "example": example, **meta}
    return field(default_factory=factory, metadata=md) if factory is not None else field(default=default, metadata=md)


@dataclass
class WithVsWithoutConfig:
    data: Optional[str] = _f(None, "a built benchmark (simfail benchmark build): its train and test splits replace the "
                             "generated training and test scenes, its held-out operators join holdout_operators",
                             "data=bench/v1")
    out: Optional[str] = _f(None, "results folder (data, models, evaluations, results.json, margins.png)", "out=exp/wvw",
                  required=True)
    categories: List[str] = _f(None, "task categories of the experiment", "categories=[pick_place,stack]",
                               factory=lambda: list(CATEGORIES))
    operators: List[str] = _f(None, "scripted failure operators generated ([all]: every operator of each category)",
                              "operators=[drop,collision]", factory=lambda: ["all"])
    holdout_operators: List[str] = _f(None, "operators never trained on; scored on (expert, variant) pairs of the test scenes",
                                      "holdout_operators=[drop]", factory=lambda: ["drop", "shaky"])
    loco: List[str] = _f(None, "categories left out one at a time (train on the others, test on it); [] for none",
                         "loco=[pour]", factory=lambda: list(CATEGORIES))
    train_groups: int = _f(2, "training scenes per category", "train_groups=4", range=(1, None))
    test_groups: int = _f(3, "held-out test scenes per category", "test_groups=5", range=(1, None))
    train_seed: int = _f(1000, "base seed of the training scenes (extra expert scenes: train_seed + 1)", "train_seed=7",
                         range=(0, None))
    test_seed: int = _f(2000, "base seed of the test scenes", "test_seed=9", range=(0, None))
    render_size: int = _f(64, "rendered image size in pixels, even", "render_size=96", range=(64, 1024))
    fps: int = _f(10, "frames per second of every dataset", "fps=10", range=(1, 60))
    closed_loop: bool = _f(True, "also compare scripted vs closed-loop policy failures", "closed_loop=false")
    closed_loop_policy: str = _f("noisy_expert", "the policy whose closed-loop failures are training data", "closed_loop_policy=bc")
    closed_loop_args: List[str] = _f(None, "KEY=VALUE arguments of that policy", "closed_loop_args=[level=3]",
                                     factory=lambda: ["level=2"])
    closed_loop_samples: int = _f(2, "rollouts per scene", "closed_loop_samples=3", range=(1, None))
    seeds: List[int] = _f(None, "training seeds (each arm is trained once per seed)", "seeds=[0,1,2,3]",
                          factory=lambda: [0, 1, 2], range=(0, None))
    view: str = _f("left", "camera view the models read", "view=wrist")
    frame_size: int = _f(24, "frames resized to this many pixels a side, >= 8", "frame_size=32", range=(8, None))
    clip_frames: int = _f(12, "frames per training clip", "clip_frames=16", range=(3, None))
    epochs: int = _f(10, "training epochs", "epochs=30", range=(1, None))
    batches_per_epoch: int = _f(30, "optimizer steps per epoch", "batches_per_epoch=16", range=(1, None))
    batch_size: int = _f(16, "clips per batch", "batch_size=16", range=(1, None))
    lr: float = _f(0.001, "AdamW learning rate, > 0", "lr=0.0005", range=(0.0, None))
    rewind_frac: float = _f(0.3, "share of rewound expert clips", "rewind_frac=0.3", range=(0.0, 1.0))
    net_width: int = _f(8, "channels of the first convolution", "net_width=16", range=(1, None))
    net_hidden: int = _f(32, "hidden units", "net_hidden=64", range=(1, None))
    net_feat_dim: int = _f(32, "frame feature size", "net_feat_dim=64", range=(1, None))
    text_dim: int = _f(32, "hashed instruction embedding size", "text_dim=64", range=(1, None))
    returns: str = _f("sum", "episode return: sum | last | mean", "returns=last", choices=["sum", "last", "mean"])
    bootstrap: int = _f(10000, "paired bootstrap replicates", "bootstrap=2000", range=(1, None))
    confidence: float = _f(0.95, "interval confidence, in (0, 1)", "confidence=0.9")
    seed: int = _f(0, "seeds the bootstrap and the subsample of the larger failure set", "seed=1", range=(0, None))
    threads: int = _f(1, "torch CPU threads", "threads=2", range=(1, None))
    overwrite: bool = _f(False, "replace an out folder that holds another experiment", "overwrite=true")
    progress: bool = _f(True, "print one line per finished piece", "progress=false")

    def validate(self) -> None:
        from simfail.task_registry import get_task, task_names

        known = task_names()
        for c in [*self.categories, *self.loco]:
            if c not in known:
                from simfail.errors import UnknownNameError

                raise UnknownNameError("task", c, known)
        if not self.categories or len(set(self.categories)) != len(self.categories):
            raise ConfigError(f"categories must be distinct task names, at least one, got {list(self.categories)}")
        if not set(self.loco) <= set(self.categories):
            raise ConfigError(f"loco={list(self.loco)} must be among categories={list(self.categories)}")
        if self.loco and len(self.categories) < 2:
            raise ConfigError("leave-one-category-out needs at least two categories (loco=[] turns it off)")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ConfigError(f"seeds must be distinct training seeds, at least one, got {list(self.seeds)}")
        if self.train_seed + 1 == self.test_seed or self.train_seed == self.test_seed:
            raise ConfigError("test_seed must differ from train_seed and train_seed + 1 (those are the training scenes)")
        offered = {o for c in self.categories for o in get_task(c).perturbations()}
        for o in [*self.operators, *self.holdout_operators]:
            if o != "all" and o not in offered:
                from simfail.errors import UnknownNameError

                raise UnknownNameError("failure operator", o, sorted(offered))
        if self.operators != ["all"]:
            if "all" in self.operators:
                raise ConfigError("operators: give [all] alone or a list of operator names")
            if not set(self.holdout_operators) <= set(self.operators):
                raise ConfigError(f"holdout_operators={list(self.holdout_operators)} must be among operators")
        if self.data not in (None, "") and self.operators != ["all"]:
            raise ConfigError("operators= selects the operators of generated data; a benchmark (data=) brings its own")
        if not self.holdout_operators:
            raise ConfigError("holdout_operators needs at least one operator (the held-out-operator test)")
        for a in self.closed_loop_args:
            if "=" not in a or not a.partition("=")[0].strip().isidentifier():
                raise ConfigError(f"closed_loop_args entries are KEY=VALUE, got {a!r}")
        if self.render_size % 2:
            raise ConfigError(f"render_size must be even, got {self.render_size}")
        if not 0.0 < self.confidence < 1.0:
            raise ConfigError(f"confidence must be in (0, 1), got {self.confidence}")
        if not self.lr > 0:
            raise ConfigError(f"lr must be > 0, got {self.lr}")

    @property
    def closed_loop_kwargs(self) -> dict[str, str]:
        return dict(a.split("=", 1) for a in self.closed_loop_args)

    def settings(self) -> dict[str, Any]:
        """The settings the results depend on (what ``experiment.json`` holds)."""
        return {k: v for k, v in asdict(self).items() if k not in RUNTIME_KEYS}

    def train_settings(self) -> dict[str, Any]:
        keys = ("view", "frame_size", "clip_frames", "epochs", "batches_per_epoch", "batch_size", "lr", "rewind_frac",
                "net_width", "net_hidden", "net_feat_dim", "text_dim")
        return {k: getattr(self, k) for k in keys}


# ----------------------------------------------------------------------------- jobs


@dataclass
class Job:
    """One model: an arm trained with one seed, scored on some test datasets."""

    name: str
    study: str  # "main" | "closed" | "loco:<category>"
    arm: Arm
    seed: int
    evals: list[str]  # "role/category" dataset names


def _jobs(cfg: WithVsWithoutConfig, cat: Any, lay: Any) -> tuple[list[Job], dict[str, dict[str, int]]]:
    wo, wf = with_vs_without_arms(cat, cfg.categories)
    budgets = {"main": check_equal_budget(wo, wf)}
    test = [f"test/{c}" for c in cfg.categories]
    closed_test = [f"closed_test/{c}" for c in cfg.categories if lay.has("closed_test", c)]
    jobs = []
    for s in cfg.seeds:
        jobs += [Job(f"{a.name}_s{s}", "main", a, s, test + closed_test) for a in (wo, wf)]
    if cfg.closed_loop:
        sc, cl = scripted_vs_closed_arms(cat, cfg.categories, cfg.seed)
        budgets["closed"] = check_equal_budget(sc, cl)
        for s in cfg.seeds:
            jobs += [Job(f"{a.name}_s{s}", "closed", a, s, test + closed_test) for a in (sc, cl)]
    for c in cfg.loco:
        a, b = leave_out(wo, c), leave_out(wf, c)
        budgets[f"loco:{c}"] = check_equal_budget(a, b)
        for s in cfg.seeds:
            jobs += [Job(f"loco-{c}_{x.name}_s{s}", f"loco:{c}", x, s, [f"test/{c}"]) for x in (a, b)]
    return jobs, budgets


def _spec(cfg: WithVsWithoutConfig, job: Job) -> dict[str, Any]:
    return {"episodes": [e.to_list() for e in sorted(job.arm.episodes)], "train": cfg.train_settings(), "seed": job.seed,
            "data": {k: getattr(cfg, k) for k in ("categories", "operators", "holdout_operators", "train_groups", "train_seed",
                                                  "render_size", "fps", "closed_loop_policy", "closed_loop_args",
                                                  "closed_loop_samples")},
            **({"benchmark": str(Path(str(cfg.data)).resolve())} if cfg.data not in (None, "") else {})}


def _hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _write_json(path: Path, obj: Any) -> None:
    from simfail.learn.checkpoint import atomic_write_bytes

    atomic_write_bytes(path, (json.dumps(obj, indent=1, sort_keys=True, allow_nan=False, default=str) + "\n").encode())


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


# ----------------------------------------------------------------------------- training


class EpisodeCache:
    """Decoded, resized, labelled training episodes, loaded once per run and shared by all models."""

    def __init__(self, paths: dict[str, Path], cfg: WithVsWithoutConfig):
        from simfail.learn.text import HashedText

        self.paths, self.cfg = paths, cfg
        self.text = HashedText(cfg.text_dim)
        self.items: dict[tuple[str, int, bool], Any] = {}

    def get(self, refs: list[Any]) -> list[Any]:
        from simfail.dataset.reader import SimfailDataset
        from simfail.learn.data import Selection, load_pool

        missing: dict[str, list[Any]] = {}
        for r in refs:
            if (r.dataset, r.index, r.expert) not in self.items:
                missing.setdefault(r.dataset, []).append(r)
        for name, rs in sorted(missing.items()):
            ds = SimfailDataset(self.paths[name])
            ex = sorted({r.index for r in rs if r.expert})
            fa = sorted({r.index for r in rs if not r.expert})
            pool = load_pool(ds, Selection(ex, fa, []), view=self.cfg.view, frame_size=(self.cfg.frame_size,) * 2,
                             text=self.text)
            for e in pool.episodes:
                e.source = name
                self.items[(name, e.index, e.expert)] = e
        return [self.items[(r.dataset, r.index, r.expert)] for r in refs]


def train_model(cfg: WithVsWithoutConfig, job: Job, folder: Path, cache: EpisodeCache) -> dict[str, Any]:
    """Train one rewind model on the job's episodes into ``folder`` (``model.pt`` + the usual
    ``config.json`` / ``train_log.json``); returns its summary."""
    from simfail.learn import require_torch
    from simfail.learn.checkpoint import save_checkpoint
    from simfail.learn.data import Pool
    from simfail.learn.model import NetConfig, RewindNet
    from simfail.learn.train import TrainConfig, train

    torch = require_torch()
    pool = Pool(cache.get(sorted(job.arm.episodes)))
    tcfg = TrainConfig(epochs=cfg.epochs, batches_per_epoch=cfg.batches_per_epoch, batch_size=cfg.batch_size, lr=cfg.lr,
                       clip_frames=cfg.clip_frames, rewind_frac=cfg.rewind_frac, seed=job.seed, threads=cfg.threads)
    ncfg = NetConfig(text_dim=cfg.text_dim, feat_dim=cfg.net_feat_dim, width=cfg.net_width, hidden=cfg.net_hidden)
    torch.manual_seed(job.seed)
    net = RewindNet(ncfg)
    res = train(net, pool, tcfg, progress=False)
    summary = {"regime": job.arm.name, "n_episodes": len(pool.episodes), "n_experts": len(pool.experts),
               "n_failures": len(pool.episodes) - len(pool.experts), "optimizer_steps": cfg.epochs * cfg.batches_per_epoch,
               "clips": cfg.epochs * cfg.batches_per_epoch * cfg.batch_size,
               "first_loss": res.log[0]["loss"], "final_loss": res.log[-1]["loss"]}
    meta = {"net": ncfg.to_dict(), "text": {"kind": "hashed", **cache.text.config()},
            "input": {"view": cfg.view, "frame_size": [cfg.frame_size] * 2, "max_frames": cfg.clip_frames},
            "train": {"settings": tcfg.to_dict(), "summary": summary}}
    save_checkpoint(folder, net, meta, [{k: v for k, v in r.items() if k != "seconds"} for r in res.log])
    return summary


def _ensure_model(cfg: WithVsWithoutConfig, job: Job, out: Path, cache: EpisodeCache) -> tuple[str, dict[str, Any], bool]:
    """``(model hash, training summary, reused)``; trains only when no finished model matches."""
    spec = _spec(cfg, job)
    key = _hash(spec)
    folder = out / "models" / key
    done = _read_json(folder / "spec.json")
    if done is not None and done.get("spec") == json.loads(json.dumps(spec)) and (folder / "model.pt").is_file():
        return key, done["summary"], True
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    summary = train_model(cfg, job, folder, cache)
    _write_json(folder / "spec.json", {"spec": spec, "summary": summary})  # written last: the model is complete
    return key, summary, False


# ----------------------------------------------------------------------------- evaluation


def evaluate_model(cfg: WithVsWithoutConfig, model_dir: Path, data: Path, report: Path) -> list[dict[str, Any]]:
    """Score one model on one dataset with ``simfail evaluate``; the per-episode rows
    (group, category, variant, score, return, failure types)."""
    from simfail.stress.commands import evaluate_settings, run_evaluate

    ecfg = evaluate_settings(["model=rewind", f"model.checkpoint={model_dir}", f"model.threads={cfg.threads}", f"data={data}",
                              f"out={report}", f"returns={cfg.returns}", "bootstrap=0", "curves=0", "video=none",
                              "progress=false"])
    metrics, _ = run_evaluate(ecfg)
    if metrics["errors"]["n"]:
        raise ConfigError(f"the rewind model failed on {metrics['errors']['n']} episodes of {data} (see {report})")
    return [{"group": int(r["group_id"]), "task": r["task"], "variant": r["variant"], "score": float(r["score"]),
             "value": float(r["returns"][cfg.returns]), "failure_types": r["failure_types"]} for r in metrics["episodes"]]


def content_hash(folder: Path) -> str:
    """sha256 over every file of a folder (relative path and bytes, in path order)."""
    h = hashlib.sha256()
    for p in sorted(x for x in folder.rglob("*") if x.is_file()):
        h.update(p.relative_to(folder).as_posix().encode() + b"\0")
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def _ensure_eval(cfg: WithVsWithoutConfig, key: str, data_name: str, out: Path, data_path: Path,
                 data_hashes: dict[str, str]) -> tuple[list[dict[str, Any]], bool]:
    path = out / "evals" / key / (data_name.replace("/", "__") + ".json")
    if data_name not in data_hashes:
        data_hashes[data_name] = content_hash(data_path)
    weights = hashlib.sha256((out / "models" / key / "model.pt").read_bytes()).hexdigest()[:16]
    want = {"model": key, "weights": weights, "data": data_name, "data_content": data_hashes[data_name],
            "returns": cfg.returns}
    got = _read_json(path)
    if got is not None and got.get("key") == want:
        return got["rows"], True
    rows = evaluate_model(cfg, out / "models" / key, data_path,
                          out / "reports" / key / data_name.replace("/", "__"))
    _write_json(path, {"key": want, "rows": rows})
    return rows, False


def group_counts(rows: list[dict[str, Any]], prefix: str, operators: list[str] | None = None, *,
                 ties: bool = False) -> dict[str, tuple[int, ...]]:
    """Group -> ``(n_pairs, n_disagree)`` of the paper's preference accuracy (a model tie is a
    disagreement), keys ``prefix/group``; ``ties=True`` adds the tied pairs as a third number.
    ``operators``: only the pairs (expert, variant of one of these operators) of each group,
    summed over the operators."""
    import numpy as np

    from simfail.stress.metrics import preference_accuracy

    by: dict[int, list[dict[str, Any]]] = {}
    for r in rows:
        by.setdefault(int(r["group"]), []).append(r)
    ctx: dict[Any, tuple[np.ndarray, np.ndarray]] = {}
    for g, rs in sorted(by.items()):
        if operators is None:
            ctx[(g, "")] = (np.array([r["score"] for r in rs]), np.array([r["value"] for r in rs]))
            continue
        expert = [r for r in rs if r["variant"] == "expert"]
        for r in rs:
            if expert and r["variant"] in operators:
                ctx[(g, r["variant"])] = (np.array([expert[0]["score"], r["score"]]), np.array([expert[0]["value"], r["value"]]))
    pa = preference_accuracy(ctx)
    out: dict[str, list[int]] = {}
    for (g, _), c in pa.contexts.items():
        v = out.setdefault(f"{prefix}/{g}", [0, 0, 0])
        v[0] += c.n_pairs
        v[1] += c.n_disagree
        v[2] += c.n_tie
    return {k: (tuple(v) if ties else (v[0], v[1])) for k, v in sorted(out.items())}


# ----------------------------------------------------------------------------- the comparisons


@dataclass
class Comparison:
    name: str
    study: str
    arm_a: str
    arm_b: str
    datasets: list[str]  # evaluated datasets
    operators: list[str] | None = None


def _comparisons(cfg: WithVsWithoutConfig, lay: Any) -> list[Comparison]:
    test = [f"test/{c}" for c in cfg.categories]
    closed = [f"closed_test/{c}" for c in cfg.categories if lay.has("closed_test", c)]
    held = list(lay.held_out)
    out = [Comparison("held-out scenes", "main", "expert_only", "with_failures", test),
           Comparison(f"held-out operators ({', '.join(held)})", "main", "expert_only", "with_failures", test, held)]
    out += [Comparison(f"  operator {o}", "main", "expert_only", "with_failures", test, [o]) for o in held]
    if closed:
        out.append(Comparison("closed-loop rollouts, held-out scenes", "main", "expert_only", "with_failures", closed))
    if cfg.loco:
        out.append(Comparison("leave-one-category-out", "loco", "expert_only", "with_failures", []))
        out += [Comparison(f"  left out: {c}", f"loco:{c}", "expert_only", "with_failures", [f"test/{c}"]) for c in cfg.loco]
    if cfg.closed_loop:
        out += [Comparison("held-out scenes", "closed", "scripted", "closed_loop", test),
                Comparison(f"held-out operators ({', '.join(held)})", "closed", "scripted", "closed_loop", test, held),
                Comparison("closed-loop rollouts, held-out scenes", "closed", "scripted", "closed_loop", closed)]
    return [c for c in out if c.datasets or c.study == "loco"]


def _counts_for(comp: Comparison, arm: str, seed: int, evals: dict[tuple[str, int, str, str], list[dict[str, Any]]],
                cfg: WithVsWithoutConfig) -> dict[str, tuple[int, ...]]:
    """Group -> ``(n_pairs, n_disagree, n_tie)`` of one arm and seed on a comparison's test set."""
    counts: dict[str, tuple[int, ...]] = {}
    if comp.study == "loco":
        for c in cfg.loco:
            counts.update(group_counts(evals[(f"loco:{c}", seed, arm, f"test/{c}")], f"test/{c}", ties=True))
        return counts
    for d in comp.datasets:
        counts.update(group_counts(evals[(comp.study, seed, arm, d)], d, comp.operators, ties=True))
    return counts


def _arm_names(study: str) -> tuple[str, str]:
    return ("scripted", "closed_loop") if study == "closed" else ("expert_only", "with_failures")


def run(cfg: WithVsWithoutConfig) -> dict[str, Any]:
    from .pooled import pooled_margin
    from .wvw_data import build_data, catalog

    cfg.validate()
    out = Path(str(cfg.out))
    _prepare_out(cfg, out)
    say = (lambda s: print(s, flush=True)) if cfg.progress else (lambda s: None)
    lay = build_data(cfg, out / "data", progress=say)
    held = lay.held_out
    cat = catalog(lay)
    jobs, budgets = _jobs(cfg, cat, lay)
    cache = EpisodeCache(lay.paths, cfg)
    evals: dict[tuple[str, int, str, str], list[dict[str, Any]]] = {}
    models: dict[str, dict[str, Any]] = {}
    data_hashes: dict[str, str] = {}
    reused = {"models": 0, "evaluations": 0, "trained": 0, "evaluated": 0}
    for i, job in enumerate(jobs, 1):
        key, summary, hit = _ensure_model(cfg, job, out, cache)
        reused["models" if hit else "trained"] += 1
        models[job.name] = {"study": job.study, "hash": key, **summary}
        for d in job.evals:
            rows, ehit = _ensure_eval(cfg, key, d, out, lay.paths[d], data_hashes)
            reused["evaluations" if ehit else "evaluated"] += 1
            evals[(job.study, job.seed, job.arm.name, d)] = rows
        say(f"[{i}/{len(jobs)}] {job.name} ({job.study}): {'reused' if hit else 'trained'}, "
            f"{summary['n_episodes']} episodes, loss {summary['final_loss']:.4f}")
    comparisons = []
    for comp in _comparisons(cfg, lay):
        a3 = [_counts_for(comp, comp.arm_a, s, evals, cfg) for s in cfg.seeds]
        b3 = [_counts_for(comp, comp.arm_b, s, evals, cfg) for s in cfg.seeds]
        a_seeds = [{k: v[:2] for k, v in c.items()} for c in a3]
        b_seeds = [{k: v[:2] for k, v in c.items()} for c in b3]
        try:
            m = pooled_margin(a_seeds, b_seeds, n_boot=cfg.bootstrap, confidence=cfg.confidence, seed=cfg.seed)
            # model ties (s_M = 0) are disagreements in A (the paper's formula); A with a tie as half a point beside it
            for side, c3 in (("a", a3), ("b", b3)):
                t = sum(v[2] for c in c3 for v in c.values())
                m[f"ties_{side}"] = t
                m[f"accuracy_ties_half_{side}"] = m[f"accuracy_{side}"] + t / 2 / m["n_pairs"]
        except ConfigError as exc:  # e.g. no strict pair (an operator absent from the chosen categories)
            m = {"error": str(exc)}
        comparisons.append({"name": comp.name, "study": comp.study, "arm_a": comp.arm_a, "arm_b": comp.arm_b,
                            "datasets": comp.datasets or [f"test/{c}" for c in cfg.loco], "operators": comp.operators, **m})
    result = {
        "budgets": {study: {"distinct_episodes_per_category": b, "optimizer_steps": cfg.epochs * cfg.batches_per_epoch,
                            "batch_size": cfg.batch_size, "arms": _arm_names(study)}
                    for study, b in budgets.items()},
        "arms": {j.name: j.arm.summary() for j in jobs if j.seed == cfg.seeds[0]},
        "data": {k: str(v) for k, v in sorted(lay.paths.items())},
        "held_out_operators": held,
        "benchmark": lay.benchmark,
        "test_groups": {f"test/{c}": len(_groups(lay.path("test", c))) for c in cfg.categories},
        "models": models,
        "comparisons": comparisons,
        "work": reused,
        "plot": str(out / "margins.png"),
    }
    plot_margins(result, out / "margins.png")
    return result


def _groups(path: Path) -> dict[int, list[int]]:
    from simfail.dataset.reader import SimfailDataset

    return SimfailDataset(path).groups()


def _prepare_out(cfg: WithVsWithoutConfig, out: Path) -> None:
    """Create ``out`` or resume in it. The datasets in ``out/data`` depend on the data settings
    (:data:`DATA_KEYS`): a folder built with other data settings is refused (``overwrite=true``
    replaces it). Models and evaluations are keyed by their own content, so other training or
    evaluation settings simply train and score what they need beside the old ones."""
    if out.exists() and not out.is_dir():
        raise OutputDirError(f"out={out} exists and is not a folder")
    settings = json.loads(json.dumps(cfg.settings(), default=str))
    mine = out / SETTINGS_NAME
    if out.is_dir() and any(out.iterdir()):
        old = _read_json(mine)
        same = isinstance(old, dict) and all(old.get(k) == settings[k] for k in DATA_KEYS)
        if not same:
            if not cfg.overwrite:
                what = "a with_vs_without run with other data settings" if old is not None else "other files"
                diff = [k for k in DATA_KEYS if isinstance(old, dict) and old.get(k) != settings[k]]
                raise OutputDirError(f"out={out} holds {what}{' (' + ', '.join(diff) + ')' if diff else ''}; pass "
                                     "overwrite=true to replace it, or the same data settings to resume")
            shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    _write_json(mine, settings)


register_experiment(Experiment(
    name="with_vs_without",
    description="rewind trained expert_only vs with_failures (and scripted vs closed-loop failures) at an equal budget, "
                "several seeds, scored on held-out scenes, held-out operators and left-out categories",
    config=WithVsWithoutConfig, run=run, table=table,
))
