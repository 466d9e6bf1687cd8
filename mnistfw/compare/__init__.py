"""Compare finished training runs side by side: one table (CSV + Markdown) and four figures.

The one entry point is :func:`mnistfw.compare.comparison.compare`; ``mnistfw-compare``
(:mod:`mnistfw.cli.compare`) and the Hydra callback run at the end of every ``mnistfw-train``
multirun (:mod:`mnistfw.compare.multirun_callback`) both call it.

* :mod:`~mnistfw.compare.runs` finds run folders (given directly or inside sweep folders) and reads them;
* :mod:`~mnistfw.compare.differences` finds the settings that differ between the runs;
* :mod:`~mnistfw.compare.table` groups runs by data, ranks them, writes ``comparison.csv`` / ``.md``;
* :mod:`~mnistfw.compare.figures` draws the ``compare_*.png`` figures.

This package imports nothing heavy on import (Hydra imports the callback at every start).
"""
