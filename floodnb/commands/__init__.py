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


def add_speed_arguments(p, *, precision_default: str = "float32", what: str = "") -> None:
    """``--precision`` and ``--threads`` (see :mod:`floodnb.runtime`) on parser ``p``."""
    p.add_argument("--precision", default=precision_default, choices=("auto", "float32", "bfloat16", "float16"),
                   help=f"numeric precision of {what or 'the model'} (default {precision_default}): bfloat16 is "
                        "mixed precision, fast on CPUs with AVX-512 BF16/AMX and recent GPUs (emulated, slower, "
                        "elsewhere); auto picks bfloat16 where it is native, else float32; float16 on CUDA only")
    p.add_argument("--threads", type=int, default=0,
                   help="torch CPU threads (default 0: $FLOODNB_THREADS, else the CPUs this process may use)")


def apply_speed_arguments(args, device: str = "cpu") -> tuple[str, int]:
    """``(precision, threads)`` of ``--precision`` / ``--threads``, checked for ``device``; sets torch's threads.

    ``ValueError`` naming the option for float16 off CUDA or a negative thread count.
    """
    from floodnb import runtime

    precision = runtime.resolve_precision(args.precision, device, name="--precision")
    if args.threads < 0:
        raise ValueError(f"--threads {args.threads}: expected an integer >= 1 (0: from the machine)")
    return precision, runtime.apply_threads(args.threads)
