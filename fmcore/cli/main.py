"""``fm``: the parser (one sub-command per module) and the error boundary around every command.

The boundary turns every exception into one paragraph on stderr: the user's errors (:class:`FmError`, and the
exceptions :func:`~fmcore.core.errors.user_error` maps to it) exit 2, an interruption 130 (SIGINT) or 143
(SIGTERM), anything else is reported as an internal error and exits 1. ``--debug`` or ``FMCORE_DEBUG=1``
also prints the traceback.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import traceback

from fmcore.core.errors import EXIT_INTERNAL, Terminated, internal_message, user_error
from fmcore.plugins.loading import PluginHost, default_host

#: the command modules, in the order ``fm --help`` lists them; each has ``add_parser(sub)`` and ``run(args, host)``
COMMANDS = ("train", "sample", "eval", "logp", "oracle", "reflow", "plugins", "recipe")
DEBUG_ENV = "FMCORE_DEBUG"


def make_parser() -> argparse.ArgumentParser:
    import importlib

    p = argparse.ArgumentParser(prog="fm", description="fmcore: flow matching and diffusion models from recipes")
    p.add_argument("--debug", action="store_true", help=f"print tracebacks of errors (also: {DEBUG_ENV}=1)")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        module = importlib.import_module(f"fmcore.cli.{name}")
        module.add_parser(sub).set_defaults(func=module.run)
    return p


def report(exc: BaseException, debug: bool) -> int:
    """Print ``exc`` as one paragraph (and its traceback when ``debug``); return the exit code."""
    if debug:
        traceback.print_exception(exc, file=sys.stderr)
    mapped = user_error(exc)
    if mapped is not None:
        print(f"error: {mapped}", file=sys.stderr)
        return mapped.exit_code
    print(f"error: {internal_message(exc)}", file=sys.stderr)
    return EXIT_INTERNAL


def _terminate(_signum, _frame) -> None:
    raise Terminated


def main(argv: list[str] | None = None, host: PluginHost | None = None) -> int:
    """Run ``fm ARGV``; ``host``: the plugins to use (default: every installed one)."""
    args = make_parser().parse_args(argv)
    debug = args.debug or os.environ.get(DEBUG_ENV, "") not in ("", "0")
    main_thread = threading.current_thread() is threading.main_thread()
    before = signal.signal(signal.SIGTERM, _terminate) if main_thread else None
    try:
        return args.func(args, host if host is not None else default_host())
    except Terminated:
        print("error: terminated (SIGTERM); nothing was lost: files are written atomically", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print("error: interrupted (SIGINT); nothing was lost: files are written atomically", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into a reader that stopped early (e.g. `fm plugins | head`)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:  # noqa: BLE001 - the boundary: classified by report(), internal errors say so
        return report(exc, debug)
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, before)


def entry() -> None:
    sys.exit(main())
