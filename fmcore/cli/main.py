"""``fm``: the parser (one sub-command per module) and the error boundary around every command."""

from __future__ import annotations

import argparse
import os
import sys

from fmcore.core.errors import FmError
from fmcore.plugins.loading import PluginHost, default_host

#: the command modules, in the order ``fm --help`` lists them; each has ``add_parser(sub)`` and ``run(args, host)``
COMMANDS = ("train", "sample", "eval", "logp", "oracle", "plugins", "recipe")


def make_parser() -> argparse.ArgumentParser:
    import importlib

    p = argparse.ArgumentParser(prog="fm", description="fmcore: flow matching and diffusion models from recipes")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        module = importlib.import_module(f"fmcore.cli.{name}")
        module.add_parser(sub).set_defaults(func=module.run)
    return p


def main(argv: list[str] | None = None, host: PluginHost | None = None) -> int:
    """Run ``fm ARGV``; ``host``: the plugins to use (default: every installed one)."""
    args = make_parser().parse_args(argv)
    try:
        return args.func(args, host if host is not None else default_host())
    except FmError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into a reader that stopped early (e.g. `fm plugins | head`)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def entry() -> None:
    sys.exit(main())
