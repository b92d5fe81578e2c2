"""``python -m fmcore`` is ``fm``."""

from fmcore.cli.commands import entry

if __name__ == "__main__":
    entry()
