"""The click group and the options several commands share (data, model), and the verbosity switch."""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from spikeconv.data import available_datasets
from spikeconv.models import available_models
from spikeconv.runtime import PRECISIONS, is_main_process, process_group, resolve_device
from spikeconv.workflows import (
    DataSource,
    model_spec_from_options,
)

DATASET_HELP = (
    f"Data set: one of {', '.join(available_datasets())}; imagefolder:PATH (one sub-folder per class, resized to the "
    "model's input); or npz:PATH[:X,Y] (arrays x and y of one .npz file, which has no train/test split)."
)
POSITIVE = click.IntRange(min=1)


def data_options(func):
    func = click.option("--download", is_flag=True, help="Allow downloading missing data files.")(func)
    func = click.option("--data-root", type=click.Path(path_type=Path), default=None,
                        help="Folder holding the data files (else $SPIKECONV_DATA, then system paths).")(func)  # fmt: skip
    return click.option("--dataset", default="fashion-mnist", show_default=True, help=DATASET_HELP)(func)


def _model_spec_options() -> dict[str, Callable[[Callable[..., Any]], Callable[..., Any]]]:
    return {
        "trust_pickle": click.option("--trust-pickle", is_flag=True,
                     help="Allow MODEL to be a pickled nn.Module (torch.save(model)); unpickling can run code from the file."),
        "std": click.option("--std", default=None, metavar="S[,S...]",
                     help="Input standard deviation(s) the model was trained with on [0, 1] pixels, one or one per channel "
                          "[default: 1; spikeconv checkpoints record their own]."),
        "mean": click.option("--mean", default=None, metavar="M[,M...]",
                     help="Input mean(s) the model was trained with on [0, 1] pixels, one or one per channel "
                          "[default: 0, i.e. no normalisation; spikeconv checkpoints record their own]."),
        "input_shape": click.option("--input-shape", default=None, metavar="C,H,W",
                     help="Input shape where the model file does not fix it [default: the data's sample shape]."),
        "num_classes": click.option("--num-classes", type=POSITIVE, default=None, help="Number of outputs, checked against the model."),
        "model_factory": click.option("--model-factory", default=None, metavar="FILE.py:FUNCTION",
                     help="Python function (or package.module:FUNCTION) that returns the network, called without "
                          "arguments; MODEL is then its state_dict, or omitted if the function loads trained weights."),
        "arch": click.option("--arch", default=None, metavar="SPEC",
                     help=f"Network of a state_dict MODEL: a preset ({', '.join(available_models())}) or layer notation."),
    }  # fmt: skip


def model_options(func):
    """The options that say what a model file does not; the command receives them as one ``model_spec``."""

    @functools.wraps(func)
    def command(*args, arch, model_factory, num_classes, input_shape, mean, std, trust_pickle, **kwargs):
        spec = model_spec_from_options(arch=arch, factory=model_factory, num_classes=num_classes, input_shape=input_shape,
                                       mean=mean, std=std, trust_pickle=trust_pickle)  # fmt: skip
        return func(*args, model_spec=spec, **kwargs)

    for option in _model_spec_options().values():
        command = option(command)
    return command


def model_file_options(func):
    """The subset of :func:`model_options` for commands whose ``--arch`` means something else (train-snn, compare):
    a MODEL file's preprocessing, input shape and pickle consent, received as one ``model_spec``."""

    @functools.wraps(func)
    def command(*args, input_shape, mean, std, trust_pickle, **kwargs):
        spec = model_spec_from_options(arch=None, factory=None, num_classes=None, input_shape=input_shape, mean=mean, std=std,
                                       trust_pickle=trust_pickle)  # fmt: skip
        return func(*args, model_spec=spec, **kwargs)

    chosen = _model_spec_options()
    for name in ("trust_pickle", "std", "mean", "input_shape"):
        command = chosen[name](command)
    return command


DEVICE_HELP = ("Where to compute: auto (CUDA when available, else the CPU), cpu, cuda or cuda:N; under torchrun, cuda and "
               "auto take the GPU of each process's LOCAL_RANK.")  # fmt: skip
PRECISION_HELP = ("Precision of conv/linear layers in simulation and training: 32, bf16 (autocast; see docs/scaling.md for "
                  "its measured cost) or 16 (CUDA only).")  # fmt: skip


def device_options(*, precision: bool = True) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--device`` (and ``--precision``) for a command that computes; the command runs inside torchrun's process group.

    The device is resolved before any work, so ``--device cuda`` without CUDA is one line and exit status 2. Under
    torchrun only rank 0 prints to stdout (every rank holds the same result); errors still come from every rank.
    """

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(func)
        def command(*args: Any, device: str, **kwargs: Any) -> Any:
            resolved = resolve_device(device)
            with process_group(resolved), contextlib.ExitStack() as stack:
                if not is_main_process():
                    stack.enter_context(contextlib.redirect_stdout(stack.enter_context(open(os.devnull, "w"))))
                return func(*args, device=str(resolved), **kwargs)

        if precision:
            command = click.option("--precision", type=click.Choice(PRECISIONS), default="32", show_default=True,
                                   help=PRECISION_HELP)(command)  # fmt: skip
        return click.option("--device", default="auto", show_default=True, metavar="auto|cpu|cuda|cuda:N", help=DEVICE_HELP)(command)

    return decorate


def status_line(line: str) -> None:
    """A progress line on stderr, from rank 0 only under torchrun (every rank would print the same)."""
    if is_main_process():
        click.echo(line, err=True)


def source(dataset: str, data_root: Path | None, download: bool) -> DataSource:
    return DataSource(name=dataset, root=data_root, download=download)


def progress() -> bool:
    return sys.stderr.isatty()


_CHATTY_LIBRARIES = ("torch", "onnx", "onnx2torch", "onnxscript", "onnxruntime", "torchvision")


def _set_verbosity(verbose: bool) -> None:
    """Show spikeconv's log and all warnings with -v; else silence the libraries' deprecation/fallback chatter
    (up to ~90 lines for one .pt2 file). spikeconv's own problems are errors, so nothing to act on is hidden."""
    import logging
    import warnings

    if verbose:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        logging.getLogger("spikeconv").addHandler(handler)
        logging.getLogger("spikeconv").setLevel(logging.INFO)
        warnings.simplefilter("default")
        return
    for name in _CHATTY_LIBRARIES:
        logging.getLogger(name).setLevel(logging.ERROR)
        warnings.filterwarnings("ignore", module=rf"{name}(\.|$)")
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="spikeconv")
@click.option("-v", "--verbose", is_flag=True, help="Show spikeconv's log and the libraries' warnings.")
def cli(verbose: bool) -> None:
    """Convert trained ReLU networks into spiking neural networks, and measure them."""
    _set_verbosity(verbose)
