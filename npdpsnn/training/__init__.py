"""Training: the DP-SGD loop, checkpoints and run records."""
