"""The benchmark harness behind ``python -m fusejit bench`` and its standard workloads."""
