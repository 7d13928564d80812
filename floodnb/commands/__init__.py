"""One module per ``floodnb`` subcommand: ``HELP``, ``add_arguments(parser)``, ``run(args)``."""

from pathlib import Path


def check_out_dir(path: str | Path, option: str = "--out-dir") -> Path:
    """``Path(path)`` for an output folder option; ``NotADirectoryError`` naming ``option`` when the
    path, or one of its parents, exists and is not a folder (instead of a bare ``[Errno 17]``).
    """
    p = Path(path)
    for q in (p, *p.parents):
        if q.exists() and not q.is_dir():
            what = "is a file" if q == p else f"has a file {q} where a folder is needed"
            raise NotADirectoryError(f"{option} {p}: {what}; expected a folder (new or existing)")
        if q.exists():
            break
    return p
