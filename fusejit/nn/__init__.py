"""``fusejit.nn``: modules with PyTorch's names, default initializations and ``state_dict``."""

from fusejit.nn.modules import *  # noqa: F403
from fusejit.nn.modules import __all__ as __all__
from fusejit.nn.modules import _Version as _Version
