"""The ``fm`` command line: one small module per command, each a thin layer over the Python API
(:mod:`fmcore.api`). :func:`main` is the error boundary."""

from fmcore.cli.main import entry, main

__all__ = ["entry", "main"]
