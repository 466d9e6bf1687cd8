"""Config schema, validation and location of the bundled YAML configs."""
