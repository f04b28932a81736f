"""The bottom layer: dtypes, devices, errors and shape helpers. Imports nothing of fusejit."""
