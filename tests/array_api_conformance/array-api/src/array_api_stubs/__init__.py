from . import _2023_12, _2024_12
