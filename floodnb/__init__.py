"""floodnb — flood mapping from Sentinel-1 radar with cross-modal distillation.

Heavy optional imports (torch, panel, leafmap) stay out of this module: ``import floodnb``
is cheap. Import the submodules you need, e.g. ``from floodnb.data import catalog``.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
