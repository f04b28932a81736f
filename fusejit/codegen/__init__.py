"""Code generation: the expression renderer shared by all targets, and one module per target."""
