"""Built-in visualizers (registered under the ``mnistfw.visualizers`` entry-point group)."""
