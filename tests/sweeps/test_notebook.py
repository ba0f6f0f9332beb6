"""notebooks/sweep_analysis.ipynb, executed end to end on a real sweep as a researcher would open it."""

from __future__ import annotations

from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).parents[2] / "notebooks" / "sweep_analysis.ipynb"


@pytest.mark.slow
def test_the_analysis_notebook_runs_on_a_sweep_and_shows_its_table_and_plots(real_sweep, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    monkeypatch.setenv("FTEXP_SWEEP_DIR", str(real_sweep))
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(notebook, timeout=300, resources={"metadata": {"path": str(NOTEBOOK.parent)}})
    client.execute()  # raises CellExecutionError, with the cell and traceback, when a cell fails
    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]
    markdown = "".join(output.get("data", {}).get("text/markdown", "") for output in outputs)
    assert f"# Sweep `{real_sweep}`" in markdown
    assert "| schedule=nofts |  | 2/2 |" in markdown
    assert "| schedule=explicit | explicit(tiny_bert_3phase.yaml) | 2/2 |" in markdown
    assert sum("image/png" in output.get("data", {}) for output in outputs) == 2
    per_seed = next(output for output in outputs if "test_acc / seed" in output.get("data", {}).get("text/plain", ""))
    assert "schedule=explicit" in per_seed["data"]["text/plain"]
