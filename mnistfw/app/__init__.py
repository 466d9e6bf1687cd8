"""The application layer: the only code that reads a run's raw Hydra config.

:mod:`.run_spec` validates it into typed objects, :mod:`.unread_keys` refuses settings the
chosen backend would not read, :mod:`.train_task`, :mod:`.eval_task` and :mod:`.predict_task`
do the work of the three console scripts, and :mod:`.recording` is the step they share.
"""
