"""``--model-factory FILE.py:FUNCTION`` or ``package.module:FUNCTION``: the user's code builds the network.

The function is called without arguments and must return an ``nn.Module``; trained weights come
from the MODEL file (a state_dict) when one is given, else the factory's module is used as it is
(for factories that load their own weights). The factory runs only at ``convert``: the SNN file
records the network as a ``torch.export`` program, so ``curve`` needs neither the factory nor its
file.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

from torch import nn

from spikeconv.errors import ConfigError, first_line

FORMAT_HINT = "write --model-factory path/to/file.py:FUNCTION or package.module:FUNCTION"


def _described(error: BaseException) -> str:
    line = first_line(error, limit=None, empty="")
    return f"{type(error).__name__}: {line}" if line else type(error).__name__


@contextlib.contextmanager
def _importable_from(folder: Path) -> Iterator[None]:
    """Let the factory file import modules beside it while it loads (as ``python file.py`` would)."""
    sys.path.insert(0, str(folder))
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(str(folder))


def _module_from_file(path: Path, spec_text: str) -> ModuleType:
    if not path.is_file():
        raise ConfigError(f"model factory file {path} does not exist; {FORMAT_HINT}")
    spec = importlib.util.spec_from_file_location(f"spikeconv_user_factory_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"model factory file {path} is not a Python file; {FORMAT_HINT}")
    module = importlib.util.module_from_spec(spec)
    try:
        with _importable_from(path.resolve().parent):
            spec.loader.exec_module(module)
    except SystemExit as error:  # sys.exit() in the user's module must not end spikeconv with its status
        raise ConfigError(f"importing model factory {spec_text} called sys.exit({error.code!r}); a factory module must not exit") from None
    except Exception as error:  # the user's code may raise anything
        raise ConfigError(f"importing model factory {spec_text} failed ({_described(error)})") from None
    return module


def load_factory(spec_text: str) -> Callable[[], object]:
    """The function named by ``FILE.py:FUNCTION`` or ``package.module:FUNCTION``.

    Raises:
        ConfigError: Bad form, missing file or module, import failure, or no such callable.
    """
    where, sep, name = spec_text.rpartition(":")
    if not sep or not where or not name.isidentifier():
        raise ConfigError(f"model factory {spec_text!r} names no function; {FORMAT_HINT}")
    if where.endswith(".py") or "/" in where or "\\" in where:
        module = _module_from_file(Path(where).expanduser(), spec_text)
    else:
        try:
            module = importlib.import_module(where)
        except SystemExit as error:
            raise ConfigError(f"importing module {where!r} of model factory {spec_text} called sys.exit({error.code!r})") from None
        except Exception as error:  # ModuleNotFoundError, or the module's own errors
            reason = _described(error)
            raise ConfigError(f"cannot import module {where!r} of model factory {spec_text} ({reason}); {FORMAT_HINT}") from None
    function = getattr(module, name, None)
    if function is None:
        raise ConfigError(f"model factory {spec_text}: {where} defines no {name!r}")
    if not callable(function):
        raise ConfigError(f"model factory {spec_text}: {name!r} is an object of type {type(function).__name__}, not a function")
    return function


def build_from_factory(spec_text: str) -> nn.Module:
    """Call the factory and check that it returned an ``nn.Module``.

    Raises:
        ConfigError: The factory cannot be found, raises, or returns something else.
    """
    function = load_factory(spec_text)
    try:
        model = function()
    except SystemExit as error:  # sys.exit() in the factory must not end spikeconv with its status
        raise ConfigError(f"model factory {spec_text} called sys.exit({error.code!r}) instead of returning a model") from None
    except Exception as error:  # the user's code may raise anything
        raise ConfigError(f"model factory {spec_text} raised {_described(error)}") from None
    if not isinstance(model, nn.Module):
        raise ConfigError(f"model factory {spec_text} returned an object of type {type(model).__name__}, not a torch.nn.Module")
    return model
