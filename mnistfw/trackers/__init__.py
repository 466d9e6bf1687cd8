"""Experiment trackers, fed by every backend through the epoch-callback seam.

The ``logger`` config group lists trackers by name, each built from its ``_target_``
(``configs/logger/*.yaml``): :class:`~mnistfw.trackers.csv_log.CSVTracker`,
:class:`~mnistfw.trackers.tensorboard_log.TensorBoardTracker`,
:class:`~mnistfw.trackers.mlflow_log.MLflowTracker`, or any Lightning logger (W&B, Neptune, ...)
through :class:`~mnistfw.trackers.lightning_logger.LightningLoggerTracker`. The protocol is in
:mod:`mnistfw.trackers.tracker`.
"""
