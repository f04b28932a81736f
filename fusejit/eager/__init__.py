"""Eager execution: the Tensor class, dispatch, factories, and the public functions and methods."""
