"""The ``spikeconv`` command line: parse options, run one workflow, print, exit.

Every user error (a SpikeconvError or a bad option) is printed as one line on stderr with a
non-zero exit status; outputs are written atomically by the workflows.
"""

from __future__ import annotations

import os
import sys

import click

from spikeconv.cli import convert as _convert  # noqa: F401  (registers its command)
from spikeconv.cli import export as _export  # noqa: F401
from spikeconv.cli import gap as _gap  # noqa: F401
from spikeconv.cli import measure as _measure  # noqa: F401
from spikeconv.cli import train as _train  # noqa: F401
from spikeconv.cli.group import cli
from spikeconv.errors import SpikeconvError, first_line

__all__ = ["cli", "main"]


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the CLI, turning every failure into one line and an exit status.

    Exit status 2 is bad input (click's convention: options, files, data, models), 1 an internal
    failure, 130 an interruption. ``SPIKECONV_DEBUG=1`` re-raises internal failures with their
    traceback for bug reports.
    """
    try:
        cli.main(args=argv, prog_name="spikeconv", standalone_mode=False)
    except click.exceptions.Exit as done:
        return done.exit_code
    except (click.Abort, KeyboardInterrupt):
        click.echo("error: interrupted", err=True)
        return 130
    except click.ClickException as exc:
        click.echo(f"error: {exc.format_message()}", err=True)
        return exc.exit_code
    except SpikeconvError as exc:
        click.echo(f"error: {exc}", err=True)
        return 2
    except Exception as exc:  # never a traceback for users; SPIKECONV_DEBUG shows it
        if os.environ.get("SPIKECONV_DEBUG"):
            raise
        reason = first_line(exc, limit=None, empty="")
        click.echo(f"error: internal error ({type(exc).__name__}: {reason}); rerun with SPIKECONV_DEBUG=1 "
                   "and report it", err=True)  # fmt: skip
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
