"""The README's Python API example runs as written (with a shorter training and a smaller network)."""

from __future__ import annotations

import re
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def api_example() -> str:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## The Python API"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_api_example_runs(tmp_path, monkeypatch, capsys):
    code = api_example()
    assert code.count("\n") <= 6, "the example stays five lines (plus the import)"
    monkeypatch.chdir(tmp_path)
    code = code.replace('"examples/recipes/moons.toml"', repr(str(ROOT / "examples" / "recipes" / "moons.toml")))
    code = code.replace('overrides=["train.steps=1000"]', 'overrides=["train.steps=30", "network.hidden=[16]", '
                        '"train.batch_size=64", "train.log_every=10"]')
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    x = namespace["x"]
    assert isinstance(x, torch.Tensor) and x.shape == (2000, 2) and bool(torch.isfinite(x).all())
    out = capsys.readouterr().out
    assert "w2" in out and "energy" in out and "data vs data" in out
    assert (tmp_path / "runs" / "moons-api" / "model.safetensors").is_file()
