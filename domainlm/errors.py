"""User-facing errors: the CLI prints their message (never a traceback) and exits non-zero."""


class DomainlmError(Exception):
    """An error whose message is written for the user: it names the file, line, field or command to fix."""

    exit_code = 2


class ConfigError(DomainlmError):
    """A config file or override is missing, malformed, or fails validation."""


class DataError(DomainlmError):
    """A data file or row is malformed, or a dataset may not be used the way it was asked for."""


class ModelError(DomainlmError):
    """A base model cannot be resolved, prepared or loaded."""


class IntegrityError(DomainlmError):
    """An artifact's files do not match the hashes recorded in its manifest."""
