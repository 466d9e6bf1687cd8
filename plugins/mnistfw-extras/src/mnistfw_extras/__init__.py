"""mnistfw-extras: an example plugin package for mnistfw (evaluators and a visualizer)."""

__version__ = "0.1.0"
