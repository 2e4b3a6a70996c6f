"""The ``--method auto`` report as text: the candidates table and the decision, for the CLI.

Separate from the search (:mod:`spikeconv.search.choose`), which produces the report as a dict.
"""

from __future__ import annotations

from typing import Any


def format_choice(report: dict[str, Any]) -> str:
    """The candidates table and the decision, as printed by ``convert --method auto``."""
    floats = any("float_accuracy" in row for row in report["candidates"])  # --weight-bits: float weights beside
    lines = ["| method | T | bits/step | val. accuracy | drop ± s.e. | expected drop ± s.e. | energy (µJ) | how |"
             + (" float weights |" if floats else ""), "|---|---:|---:|---:|---:|---:|---:|---|" + ("---:|" if floats else "")]  # fmt: skip
    for row in report["candidates"]:
        energy = "" if row["energy_uj"] is None else f"{row['energy_uj']:.3f}"
        extra = (f" {row['float_accuracy']:.2f} |" if "float_accuracy" in row else " |") if floats else ""
        lines.append(f"| {row['variant']} | {row['timesteps']} | {row['bits_per_step']} | {row['accuracy']:.2f} | "
                     f"{row['drop']:+.2f} ± {row['drop_se']:.2f} | {row['expected_drop']:+.2f} ± {row['expected_se']:.2f} | {energy} | "
                     f"{row['how']} |{extra}")  # fmt: skip
    chosen, validation = report["chosen"], report["validation"]
    verdict = "within" if report["met_budget"] else "NOT within (closest kept)"
    ann = chosen["accuracy"] + chosen["drop"]  # the ANN on the same samples
    lines.append(f"auto: {chosen['variant']} at T = {chosen['timesteps']}: {chosen['accuracy']:.2f}% on {chosen['samples']} "
                 f"held-out training samples (ANN {ann:.2f}%, "
                 f"drop {chosen['drop']:.2f} ± {chosen['drop_se']:.2f}, expected {chosen['expected_drop']:.2f} ± "
                 f"{chosen['expected_se']:.2f}), {verdict} --max-drop {report['max_drop']:g} with one standard error to spare; "
                 f"{report['screened']} screened, {report['simulated']} simulated on {validation['search_samples']} samples, "
                 f"{report['confirmed']} confirmed on up to {validation['samples']}")  # fmt: skip
    finetune = report.get("finetune", {})
    if finetune.get("allowed"):
        lines.append(f"auto: --allow-finetune: {finetune['trained']} hybrid fine-tune(s), {finetune['seconds']:.0f} s of training"
                     + ("; the chosen SNN was trained" if chosen.get("how") == "fine-tuned" else ""))  # fmt: skip
    return "\n".join(lines)
