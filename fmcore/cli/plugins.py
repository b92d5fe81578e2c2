"""``fm plugins``: every component, by kind, with its package and version; broken plugins and why."""

from __future__ import annotations

import argparse
import json

from fmcore.plugins.kinds import KINDS


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("plugins", help="list installed components and broken plugins")
    p.add_argument("--json", action="store_true")
    return p


def _listed(registry, kind: str) -> list:
    """Every component of ``kind``, each package's version of a clashing name included."""
    clashes = registry.clashes()
    out = []
    for c in registry.components(kind):
        out += clashes.get((kind, c.name), [c])
    return out


def run(args, host) -> int:
    registry = host.registry()
    records = sorted(host.records.values(), key=lambda r: r.name)
    broken = [r for r in records if r.error]
    clashes = registry.clashes()
    if args.json:
        kinds = {kind: [{"name": c.name, "package": c.package, "version": c.version, "help": c.help,
                         "clash": (kind, c.name) in clashes}
                        for c in _listed(registry, kind)] for kind in KINDS}
        print(json.dumps({"components": kinds, "broken": [
            {"plugin": r.name, "package": r.package, "version": r.version, "error": r.error} for r in broken],
            "clashes": [registry.clash_message(kind, name) for kind, name in clashes]}, indent=2))
        return 0
    for kind in KINDS:
        comps = _listed(registry, kind)
        print(f"{kind} ({KINDS[kind].what}):")
        for c in comps:
            mark = "  [CLASH: refused where used]" if (kind, c.name) in clashes else ""
            print(f"  {c.name:<16} {c.package} {c.version:<8} {c.help}{mark}")
        if not comps:
            print("  (none)")
    if clashes:
        print("clashes (a name registered by two packages; recipes using it are refused):")
        for kind, name in clashes:
            print(f"  {registry.clash_message(kind, name)}")
    if broken:
        print("broken plugins:")
        for r in broken:
            print(f"  {r.name} ({r.package} {r.version}): {r.error}")
    return 0
