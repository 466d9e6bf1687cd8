"""User-facing errors.

Every error a user can cause (bad config value, corrupt file, missing plugin, wrong model
folder) is raised as a subclass of :class:`MnistfwError` whose message is one line that
names the problem and the fix. The command-line entry points print that line and exit 2
instead of showing a traceback.
"""


class MnistfwError(Exception):
    """Base class: a problem the user can fix; the message says how."""


class ConfigError(MnistfwError):
    """A config value is missing, misspelt or out of range."""


class DataError(MnistfwError):
    """A data file is missing, corrupt, truncated or fails its checksum."""


class PluginError(MnistfwError):
    """A plugin is unknown or fails to load."""


class ModelFormatError(MnistfwError):
    """A saved model folder is missing, of another backend, or of an unsupported format version."""


class BackendUnavailableError(MnistfwError):
    """A backend's runtime requirement (e.g. Java for Spark) is missing."""


class TrainingError(MnistfwError):
    """Training cannot go on (the loss diverged); the message says which setting to change."""
