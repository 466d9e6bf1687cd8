"""Console scripts: ``mnistfw-train``, ``mnistfw-eval``, ``mnistfw-predict``, ``mnistfw-plugins``."""
