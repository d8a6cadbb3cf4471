"""The package version, in a leaf module: pyproject.toml and every module read it here."""

__version__ = "0.1.0"
