"""``floodnb`` command line: a thin layer over the library.

Each subcommand lives in its own module under :mod:`floodnb.commands` and defines
``HELP``, ``add_arguments(parser)`` and ``run(args) -> int``. Heavy imports happen inside
``run`` so that ``floodnb --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from types import ModuleType

from floodnb import __version__

#: subcommand name -> module under floodnb.commands
COMMANDS: dict[str, str] = {
    "simulate": "simulate",
    "catalog": "catalog",
    "download": "download",
    "pack": "pack",
    "noise": "noise",
    "train": "train",
    "evaluate": "evaluate",
    "predict": "predict",
    "experiment": "experiment",
    "run": "run",
    "dashboard": "dashboard",
    "pool": "pool",
    "transfer": "transfer",
    "generate": "generate",
}


def _available() -> dict[str, ModuleType]:
    mods = {}
    for name, mod in COMMANDS.items():
        try:
            mods[name] = importlib.import_module(f"floodnb.commands.{mod}")
        except ModuleNotFoundError as exc:  # a command whose module is not part of this build
            if exc.name != f"floodnb.commands.{mod}":
                raise
    return mods


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="floodnb",
        description="Flood mapping from Sentinel-1 with cross-modal distillation.",
    )
    parser.add_argument("--version", action="version", version=f"floodnb {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, mod in _available().items():
        p = sub.add_parser(name, help=mod.HELP, description=mod.HELP)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (FileNotFoundError, FileExistsError, NotADirectoryError, ValueError) as exc:
        # library errors already name the file/argument and what was expected
        print(f"floodnb {args.command}: error: {_message(exc)}", file=sys.stderr)
        return 2


def _message(exc: BaseException) -> str:
    """``str(exc)``, except that a bare OS error (``[Errno 17] File exists: 'x'``, e.g. a folder
    to create where a file is) is reworded to name the path and what was expected.
    """
    if isinstance(exc, OSError) and exc.filename is not None and str(exc).startswith("[Errno"):
        if isinstance(exc, (FileExistsError, NotADirectoryError)):
            return (f"{exc.filename}: {exc.strerror}; expected a folder there (or a path whose parents are "
                    "folders), found a file")
        return f"{exc.filename}: {exc.strerror}"
    return str(exc)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
