"""The notebooks: five, committed with their outputs (made on full MNIST by scripts/execute_notebooks.py),
not stale, and they run top to bottom with a real kernel in smoke mode (embedded sample, few epochs)."""

import importlib.util
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
spec = importlib.util.spec_from_file_location("execute_notebooks", ROOT / "scripts" / "execute_notebooks.py")
execute_notebooks = importlib.util.module_from_spec(spec)
spec.loader.exec_module(execute_notebooks)


def test_there_are_five_notebooks():
    assert [p.stem for p in NOTEBOOKS] == ["01_pixels_and_similarity", "02_gradient_descent", "03_training_a_classifier",
                                           "04_all_ten_digits", "05_research_variants"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_with_outputs_made_from_this_code(path):
    nb = nbformat.read(path, as_version=4)
    stored = nb.metadata.get("mnistjax", {}).get("code_sha256")
    assert stored == execute_notebooks.code_sha256(nb), \
        f"{path.name}: its code changed since its outputs were made; run python scripts/execute_notebooks.py {path.stem}"
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count for c in code) and sum("image/png" in o.get("data", {}) for c in code for o in c.outputs) >= 1
    assert not any(o.get("output_type") == "error" for c in code for o in c.outputs)
    assert path.stat().st_size <= execute_notebooks.MAX_BYTES


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs(path, monkeypatch):
    monkeypatch.setenv("MNISTJAX_SMOKE", "1")
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    outputs = [o for c in nb.cells for o in c.get("outputs", [])]
    assert sum("image/png" in o.get("data", {}) for o in outputs) >= 1  # the figures show inline
    assert not any("IProgress not found" in o.get("text", "") for o in outputs)
