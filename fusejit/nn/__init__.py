"""``fusejit.nn``: modules with PyTorch's names, default initializations and ``state_dict``;
``fusejit.nn.functional`` (their functional forms) and ``fusejit.nn.init``."""

from fusejit.nn import (
    activation,
    attention,
    container,
    conv,
    losses,
    modules,
    normalization,
    padding,
    pooling,
)
from fusejit.nn import functional as functional
from fusejit.nn import init as init
from fusejit.nn import utils as utils
from fusejit.nn.activation import *  # noqa: F403
from fusejit.nn.attention import *  # noqa: F403
from fusejit.nn.container import *  # noqa: F403
from fusejit.nn.conv import *  # noqa: F403
from fusejit.nn.losses import *  # noqa: F403
from fusejit.nn.modules import *  # noqa: F403
from fusejit.nn.modules import _Version as _Version
from fusejit.nn.normalization import *  # noqa: F403
from fusejit.nn.padding import *  # noqa: F403
from fusejit.nn.pooling import *  # noqa: F403

__all__ = [
    *modules.__all__, *activation.__all__, *attention.__all__, *container.__all__,
    *conv.__all__, *normalization.__all__, *padding.__all__, *pooling.__all__, "functional",
    "init", "utils", *losses.__all__,
]  # fmt: skip
