"""Graph passes: each a function Graph -> (Graph, changed)."""
