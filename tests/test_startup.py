"""`fm --help` and `fm plugins` import no heavy library (scikit-learn, scipy, matplotlib, accelerate, Pillow) and
no data set: component modules are loaded, but what they use is imported when it is used (bench/startup.py
measures the time)."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("sklearn", "scipy", "matplotlib", "accelerate", "PIL")


def modules_after(*argv: str) -> set[str]:
    code = ("import contextlib, io, json, sys\n"
            "from fmcore.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            "    try:\n"
            f"        main({list(argv)!r})\n"
            "    except SystemExit:\n"
            "        pass\n"
            "print(json.dumps(sorted(m.split('.')[0] for m in sys.modules)))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    return set(json.loads(done.stdout.splitlines()[-1]))


def test_fm_plugins_and_help_import_no_heavy_library():
    for argv in (["plugins"], ["--help"]):
        loaded = modules_after(*argv)
        assert "fmcore_datasets" in loaded or argv == ["--help"]
        assert not loaded & set(HEAVY), (argv, sorted(loaded & set(HEAVY)))
