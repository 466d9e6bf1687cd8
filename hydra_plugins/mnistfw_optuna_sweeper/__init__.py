"""mnistfw's Optuna sweeper for Hydra multirun (``hydra/sweeper: mnistfw_optuna``).

Hydra imports every public module here at start-up, so they import only Hydra and
OmegaConf; Optuna and the sweep itself (:mod:`mnistfw.sweeps`) load when a sweep runs.
"""
