"""The seeds' direct-training claims, reproduced with error bars (issue 30): two tables, resumable.

``--table mtlif``: seed 002 (Xu, Liu & Yang, arXiv:2112.07426) reports 93.08 % on Fashion-MNIST with
the multi-threshold LIF at T = 2 (32C5-P2-64C5-P2-1024, 200 epochs, mean of 5 runs). One run per seed:
``spikeconv train-snn --arch fmnist-cnn --recipe xu2021-mtlif --timesteps 2 --epochs 200 --seed S``.

``--table ablation``: seed 000 (InfLoR) orders SRIF + MPR above SRIF above hard-reset IF / LIF. The
four neurons at T = 2 and 4 on the same network under one budget (the ``guo2022-inflor`` recipe,
``--epochs`` epochs, default 20), each neuron replacing the recipe's: ``spikeconv train-snn --arch
fmnist-cnn --recipe guo2022-inflor --neuron N [--mpr] --timesteps T --epochs E --seed S``.

Each run is one ``spikeconv train-snn`` process writing ``OUT_DIR/TABLE/RUN.pt`` and its per-epoch
log ``RUN.pt.log.json`` (``RUN`` = ``METHOD_tT_eE_sSEED``). A run whose log holds all its epochs is
skipped; any other is (re)started with ``--resume``, so an interrupted run continues from its last
finished epoch. ``--report`` trains nothing: it writes ``OUT_DIR/report.md`` and ``report.json``
from the runs finished so far (``bench/seed_report.py``: mean ± std over seeds, paired differences
per seed), marking the missing and partial ones. Two processes may share the out dir if they train
different ``--seeds`` or ``--methods``.

Usage:
    python bench/reproduce_seeds.py --table mtlif --seeds 0,1,2 --threads 2 --out-dir bench/results/reproduce_seeds
    python bench/reproduce_seeds.py --table ablation --seeds 0,1,2 --epochs 20 --threads 2 --out-dir bench/results/reproduce_seeds
    python bench/reproduce_seeds.py --report --out-dir bench/results/reproduce_seeds [--epochs ...: as trained]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from seed_report import write_report  # noqa: E402
from snn_ablation import VARIANTS, variant_name  # noqa: E402

from spikeconv.options import snn_training_from_options  # noqa: E402

TABLES = ("mtlif", "ablation")
RECIPES = {"mtlif": "xu2021-mtlif", "ablation": "guo2022-inflor"}
METHODS = {"mtlif": {"mtlif": ("mtlif", False)}, "ablation": {variant_name(n, m): (n, m) for n, m in VARIANTS}}
DEFAULT_EPOCHS = {"mtlif": 200, "ablation": 20}  # the paper's 200; the ablation's budget is our choice (docs/benchmarks.md)
DEFAULT_TIMESTEPS = {"mtlif": "2", "ablation": "2,4"}


@dataclass(frozen=True)
class Run:
    """One training run of a table: a method at one T, one seed, one budget."""

    table: str
    method: str
    timesteps: int
    seed: int
    epochs: int
    train_limit: int | None = None

    @property
    def name(self) -> str:
        limit = f"_n{self.train_limit}" if self.train_limit else ""
        return f"{self.method}_t{self.timesteps}_e{self.epochs}_s{self.seed}{limit}"

    def checkpoint(self, out_dir: Path) -> Path:
        return out_dir / self.table / f"{self.name}.pt"

    def log(self, out_dir: Path) -> Path:
        return out_dir / self.table / f"{self.name}.pt.log.json"

    def options(self) -> dict[str, Any]:
        """``train-snn``'s options for this run, as ``snn_training_from_options`` takes them."""
        neuron, mpr = METHODS[self.table][self.method]
        chosen = {"neuron": neuron, "mpr": True if mpr else None} if self.table == "ablation" else {}
        return {"recipe": RECIPES[self.table], **chosen, "timesteps": self.timesteps, "epochs": self.epochs, "seed": self.seed}

    def argv(self, out_dir: Path, *, arch: str, dataset: str, device: str) -> list[str]:
        """The ``spikeconv train-snn`` arguments that train (or continue) this run."""
        options = self.options()
        argv = ["train-snn", "--arch", arch, "--dataset", dataset, "--recipe", options["recipe"]]
        argv += ["--neuron", options["neuron"]] if "neuron" in options else []
        argv += ["--mpr"] if options.get("mpr") else []
        argv += ["--timesteps", str(self.timesteps), "--epochs", str(self.epochs), "--seed", str(self.seed)]
        argv += ["--train-limit", str(self.train_limit)] if self.train_limit else []
        return [*argv, "--device", device, "--out", str(self.checkpoint(out_dir)), "--resume"]

    def expected_config(self) -> dict[str, Any]:
        """The configuration its log must record (JSON form), from the library's own option handling."""
        return json.loads(json.dumps(snn_training_from_options(**self.options()).to_dict()))


def plan(table: str, *, seeds: list[int], epochs: int, timesteps: list[int], methods: list[str] | None,
         train_limit: int | None) -> list[Run]:  # fmt: skip
    """Every run of ``table``, seed-major, so that each seed's cells complete together."""
    chosen = methods or list(METHODS[table])
    unknown = sorted(set(chosen) - set(METHODS[table]))
    if unknown:
        raise SystemExit(f"--methods {', '.join(unknown)}: table {table} has {', '.join(METHODS[table])}")
    return [Run(table, method, t, seed, epochs, train_limit) for seed in seeds for t in timesteps for method in chosen]


def run_state(run: Run, out_dir: Path, arch: str) -> tuple[str, dict[str, Any] | None]:
    """``missing``, ``partial``, ``finished`` or ``mismatch`` (a log of other options or network), and the log."""
    path = run.log(out_dir)
    if not path.is_file():
        return "missing", None
    log = json.loads(path.read_text())
    if log.get("config") != run.expected_config() or log.get("arch", {}).get("name") != arch:
        return "mismatch", log
    return ("finished" if len(log.get("epochs", [])) >= run.epochs else "partial"), log


def train(runs: list[Run], args: argparse.Namespace) -> None:
    """Train every unfinished run, one ``spikeconv train-snn`` process at a time; stop at the first failure."""
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    for run in runs:
        state, _ = run_state(run, args.out_dir, args.arch)
        if state == "finished":
            print(f"finished, skipped: {run.log(args.out_dir)}", flush=True)
            continue
        if state == "mismatch":
            raise SystemExit(f"{run.log(args.out_dir)} was trained with other options or another network; pass another --out-dir")
        argv = run.argv(args.out_dir, arch=args.arch, dataset=args.dataset, device=args.device)
        print(f"{'would run' if args.dry_run else state + ', running'}: OMP_NUM_THREADS={args.threads} "
              f"{shlex.join(['spikeconv', *argv])}", flush=True)  # fmt: skip
        if args.dry_run:
            continue
        run.checkpoint(args.out_dir).parent.mkdir(parents=True, exist_ok=True)
        done = subprocess.run([sys.executable, "-m", "spikeconv", *argv], env=env, check=False)
        if done.returncode != 0:
            raise SystemExit(f"train-snn failed (exit {done.returncode}) for {run.name}; rerun to resume")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", choices=TABLES, default=None, help="the table to train (with --report: to report; default both)")
    parser.add_argument("--report", action="store_true", help="build report.md / report.json from the finished runs; train nothing")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--epochs", type=int, default=None, help="default: 200 (mtlif, the paper's) or 20 (ablation)")
    parser.add_argument("--timesteps", default=None, help="comma-separated; default 2 (mtlif) or 2,4 (ablation)")
    parser.add_argument("--methods", default=None, help="a subset of the table's methods, e.g. srif,srif+mpr")
    parser.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS of each train-snn process")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--train-limit", type=int, default=None, help="first N training images only (smoke runs; kept in names)")
    parser.add_argument("--arch", default="fmnist-cnn", help="the tables' network; another only for quick checks")
    parser.add_argument("--dataset", default="fashion-mnist", help="the tables' data; another only for quick checks")
    parser.add_argument("--dry-run", action="store_true", help="print the train-snn commands of unfinished runs, run nothing")
    parser.add_argument("--out-dir", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.table is None and not args.report:
        parser.error("pass --table mtlif|ablation to train (one command per table), or --report")
    return args


def table_runs(table: str, args: argparse.Namespace) -> list[Run]:
    timesteps = [int(t) for t in (args.timesteps or DEFAULT_TIMESTEPS[table]).split(",")]
    methods = args.methods.split(",") if args.methods else None
    return plan(table, seeds=[int(s) for s in args.seeds.split(",")], epochs=args.epochs or DEFAULT_EPOCHS[table],
                timesteps=timesteps, methods=methods, train_limit=args.train_limit)  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    tables = [args.table] if args.table else list(TABLES)
    if args.report:
        states = {table: [(run, *run_state(run, args.out_dir, args.arch)) for run in table_runs(table, args)] for table in tables}
        print(write_report(states, args.out_dir))
        return
    train(table_runs(args.table, args), args)


if __name__ == "__main__":
    main()
