"""The ``fm`` command line: one small module per command over the Python API (:mod:`fmcore.api`)."""

from fmcore.cli.commands import entry, main

__all__ = ["entry", "main"]
