"""Optuna sweeps: the ``mnistfw_optuna`` Hydra sweeper and the link to a running trial.

* :mod:`~mnistfw.sweeps.pruning` - the epoch callback that reports to a trial and prunes it;
* :mod:`~mnistfw.sweeps.space` - ``params`` / ``list_params`` / command-line sweeps -> Optuna distributions;
* :mod:`~mnistfw.sweeps.storage` - ``storage`` -> in-memory, RDB (SQLAlchemy URL) or journal file;
* :mod:`~mnistfw.sweeps.runner` - the trial loop of one process: lost-trial recovery, ask, run, tell;
* :mod:`~mnistfw.sweeps.sweeper` - a whole sweep: settings, study, worker processes, stop reasons;
* :mod:`~mnistfw.sweeps.launching` - trials through a ``hydra/launcher`` (joblib, submitit, ...): ask, launch, tell;
* :mod:`~mnistfw.sweeps.devices` - which GPU each concurrent trial sees (``CUDA_VISIBLE_DEVICES``);
* :mod:`~mnistfw.sweeps.results` - results YAML/JSON, ``best_config.yaml``, ``trials.csv``, plots.

The Hydra plugin itself (``hydra_plugins/mnistfw_optuna_sweeper``) only registers the config
and forwards to :class:`~mnistfw.sweeps.sweeper.OptunaSweep`.
"""
