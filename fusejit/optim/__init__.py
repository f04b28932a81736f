"""``fusejit.optim``: optimizers with ``torch.optim``'s names, arguments, defaults, update
arithmetic and ``state_dict`` structure, and learning-rate schedules
(``fusejit.optim.lr_scheduler``).

>>> import fusejit
>>> from fusejit import nn
>>> model = nn.Linear(3, 1)
>>> opt = fusejit.optim.AdamW(model.parameters(), lr=1e-3)
>>> sorted(opt.state_dict())
['param_groups', 'state']
"""

from fusejit.optim import lr_scheduler
from fusejit.optim.algorithms import SGD, Adagrad, Adam, AdamW, RMSprop
from fusejit.optim.optimizer import Optimizer

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "lr_scheduler"]
