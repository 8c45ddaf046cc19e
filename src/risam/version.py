"""The version of risam, read by the package and written into the weights files it saves."""

__version__ = "0.1.0"
