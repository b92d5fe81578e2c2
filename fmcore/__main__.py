"""``python -m fmcore`` is ``fm``."""

from fmcore.cli import entry

if __name__ == "__main__":
    entry()
