"""Optuna sweeps: the link between the Hydra sweeper plugin and a running trial."""
