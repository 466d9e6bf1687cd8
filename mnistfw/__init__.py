"""mnistfw: a configuration-driven training framework for handwritten-digit recognition."""

__version__ = "0.1.0"
