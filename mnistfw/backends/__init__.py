"""Model backends. Each speaks the small protocol in :mod:`mnistfw.backends.base`."""
