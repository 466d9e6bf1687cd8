"""Plugin system: the typed contract (:mod:`mnistfw.plugins.contract`) and the entry-point
registry (:mod:`mnistfw.plugins.registry`)."""
