"""Installing a plugin without pip (for tests)."""

from __future__ import annotations

from pathlib import Path


def fake_install(site: Path, distribution: str, entry_points: dict[str, str], files: dict[str, str] | None = None,
                 version: str = "0.1") -> Path:
    """Write ``files`` (relative path -> text) and a ``<distribution>-<version>.dist-info`` with the given
    ``fmcore`` entry points into ``site``. Put ``site`` on ``sys.path`` (or ``PYTHONPATH``) and
    ``importlib.metadata`` sees an installed distribution, as if ``pip install`` had run."""
    site = Path(site)
    for rel, text in (files or {}).items():
        target = site / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    info = site / f"{distribution.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {distribution}\nVersion: {version}\n",
                                   encoding="utf-8")
    lines = "".join(f"{name} = {target}\n" for name, target in entry_points.items())
    (info / "entry_points.txt").write_text(f"[fmcore]\n{lines}", encoding="utf-8")
    return info
