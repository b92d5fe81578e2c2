"""``fm plugins``: every component, by kind, with its package and version; broken plugins and why."""

from __future__ import annotations

import argparse
import json

from fmcore.plugins.kinds import KINDS


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("plugins", help="list installed components and broken plugins")
    p.add_argument("--json", action="store_true")
    return p


def run(args, host) -> int:
    registry = host.registry()
    records = sorted(host.records.values(), key=lambda r: r.name)
    broken = [r for r in records if r.error]
    if args.json:
        kinds = {kind: [{"name": c.name, "package": c.package, "version": c.version, "help": c.help}
                        for c in registry.components(kind)] for kind in KINDS}
        print(json.dumps({"components": kinds, "broken": [
            {"plugin": r.name, "package": r.package, "version": r.version, "error": r.error} for r in broken]},
            indent=2))
        return 0
    for kind in KINDS:
        comps = registry.components(kind)
        print(f"{kind} ({KINDS[kind].what}):")
        for c in comps:
            print(f"  {c.name:<16} {c.package} {c.version:<8} {c.help}")
        if not comps:
            print("  (none)")
    if broken:
        print("broken plugins:")
        for r in broken:
            print(f"  {r.name} ({r.package} {r.version}): {r.error}")
    return 0
