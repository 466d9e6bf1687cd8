"""Built-in evaluators (registered under the ``mnistfw.evaluators`` entry-point group)."""
