"""The graph IR: graphs, the if / loop node forms, the verifier, the printer, the JSON codec."""
