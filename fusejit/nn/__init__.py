"""``fusejit.nn``: modules with PyTorch's names, default initializations and ``state_dict``."""

from fusejit.nn import utils as utils
from fusejit.nn.losses import *  # noqa: F403
from fusejit.nn.losses import __all__ as _losses_all
from fusejit.nn.modules import *  # noqa: F403
from fusejit.nn.modules import __all__ as __all__
from fusejit.nn.modules import _Version as _Version

__all__ = [*__all__, *_losses_all]
