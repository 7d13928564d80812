"""``python -m floodnb ...`` = the ``floodnb`` command (also what ``torchrun -m floodnb train ...`` runs)."""

import sys

from floodnb.cli import main

if __name__ == "__main__":
    sys.exit(main())
