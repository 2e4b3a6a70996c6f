"""Mutation fuzzing of every file format spikeconv reads, with the CLI's one-line error contract checked.

For each format (ONNX, .pt2, ANN checkpoint, SNN files from a checkpoint / ONNX / .pt2 model, a
train-snn checkpoint, an npz data file) a valid seed is made, then ``--mutants`` seeded mutants
of it (tests/reliability/loader_fuzz.py: byte, zip-member and structured mutations) are fed to the
command that reads them via ``spikeconv.cli.main`` in this process. Each outcome is counted as
``worked`` (exit 0), ``error exit 2`` (exactly one ``error:`` line) or ``FAILED`` (exit 1, another
code, several lines or a traceback); every failing mutant is saved with its command and stderr.
The results are in docs/benchmarks.md; the default test suite runs a small slice
(tests/reliability/test_fuzz_loaders.py).

    python bench/fuzz_loaders.py --mutants 200 --seed 0 --out-dir bench/results/fuzz_loaders
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "reliability"))

import loader_fuzz  # noqa: E402


class _Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise _Timeout


def _save_failure(folder: Path, outcome: loader_fuzz.Outcome) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"{outcome.fmt}-{outcome.index:04d}"
    mutant = folder / f"{stem}{loader_fuzz.SUFFIXES[outcome.fmt]}"
    mutant.write_bytes(outcome.mutant)
    record = {"format": outcome.fmt, "index": outcome.index, "mutation": outcome.kind, "exit": outcome.code,
              "stderr": outcome.err, "argv": list(outcome.argv), "mutant": mutant.name}  # fmt: skip
    (folder / f"{stem}.json").write_text(json.dumps(record, indent=2) + "\n")
    return mutant


def _run_with_timeout(seconds: int):
    def run(argv: list[str]) -> tuple[int, str, str]:
        signal.alarm(seconds)
        try:
            return loader_fuzz.run_cli(argv)
        except _Timeout:
            return -1, "", f"timed out after {seconds} s\n"
        finally:
            signal.alarm(0)

    return run


def _run_format(fmt: str, seeds: dict, work: Path, args: argparse.Namespace) -> Counter:
    counts = Counter()
    for outcome in loader_fuzz.fuzz(fmt, seeds, work, mutants=args.mutants, seed=args.seed, run=_run_with_timeout(args.timeout)):
        verdict = outcome.verdict
        counts["worked" if verdict == "worked" else "error exit 2" if verdict == "error" else "FAILED"] += 1
        if verdict == "worked" and outcome.err.strip():
            counts["worked, stderr not empty"] += 1
            first = outcome.err.strip().splitlines()[0][:200]
            print(f"  note: {fmt} #{outcome.index} ({outcome.kind}) worked but wrote to stderr: {first}")
        if verdict.startswith("FAILED"):
            saved = _save_failure(args.out_dir, outcome)
            last = outcome.err.strip().splitlines()[-1] if outcome.err.strip() else ""
            print(f"  FAILED {fmt} #{outcome.index} ({outcome.kind}): {verdict}; {last[:300]} -> {saved}")
    return counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mutants", type=int, default=200, help="Mutants per format.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--formats", default=",".join(loader_fuzz.FORMATS), help=f"Comma-separated, of {', '.join(loader_fuzz.FORMATS)}.")
    parser.add_argument("--out-dir", type=Path, default=Path("fuzz-failures"), help="Where failing mutants are saved.")
    parser.add_argument("--timeout", type=int, default=60, help="Seconds one mutant may run before it counts as FAILED.")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's).")
    args = parser.parse_args()
    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    unknown = sorted(set(formats) - set(loader_fuzz.FORMATS))
    if unknown:
        parser.error(f"unknown formats {unknown}; choose from {', '.join(loader_fuzz.FORMATS)}")
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    signal.signal(signal.SIGALRM, _alarm)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="spikeconv-fuzz-") as tmp:
        seeds = loader_fuzz.make_seeds(Path(tmp) / "seeds", tuple(formats))
        print(f"seeds made in {time.perf_counter() - started:.1f} s; {args.mutants} mutants per format, seed {args.seed}")
        rows = []
        for fmt in formats:
            begun = time.perf_counter()
            rows.append((fmt, _run_format(fmt, seeds, Path(tmp) / fmt, args), time.perf_counter() - begun))
    total_failures = sum(counts["FAILED"] for _, counts, _ in rows)
    print("\n| format | mutants | worked | error exit 2 | FAILED | worked, with stderr output | wall (s) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for fmt, counts, wall in rows:
        total = counts["worked"] + counts["error exit 2"] + counts["FAILED"]
        print(f"| {fmt} | {total} | {counts['worked']} | {counts['error exit 2']} | {counts['FAILED']} | "
              f"{counts['worked, stderr not empty']} | {wall:.1f} |")  # fmt: skip
    print(f"\ntotal wall time {time.perf_counter() - started:.1f} s; {total_failures} failure(s)"
          + (f", saved under {args.out_dir}" if total_failures else ""))  # fmt: skip
    return 1 if total_failures else 0


if __name__ == "__main__":
    sys.exit(main())
