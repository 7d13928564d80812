"""Pipeline orchestration (papermill) on small throwaway notebooks: outputs, skip/rerun, failures."""

import json

import nbformat
import pytest

from floodnb.pipeline import PipelineError, run_pipeline


def _nb(path, *cells):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    params = nbformat.v4.new_code_cell(
        "data_root = ''\nrun_dir = ''\nout_dir = ''\nseed = 0\nepochs = 1\nfast = False"
    )
    params.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_code_cell("import json, pathlib"), params]
    nb.cells += [nbformat.v4.new_code_cell(c) for c in cells]
    nbformat.write(nb, path)


@pytest.fixture()
def nbdir(tmp_path):
    d = tmp_path / "nbs"
    d.mkdir()
    _nb(d / "a.ipynb", "pathlib.Path(out_dir, 'a.txt').write_text(data_root + '|' + str(seed))")
    _nb(
        d / "b.ipynb",
        "txt = pathlib.Path(run_dir, 'a', 'a.txt').read_text()\n"
        "json.dump({'upstream': txt, 'epochs': epochs}, open(pathlib.Path(out_dir, 'metrics.json'), 'w'))",
    )
    _nb(d / "c.ipynb", "x = 1", "raise ValueError('boom in c')")
    return d


def test_runs_in_order_records_state_and_skips_on_rerun(tmp_path, nbdir, capsys):
    data = tmp_path / "data"
    data.mkdir()
    kw = dict(runs_dir=tmp_path / "runs", data_root=data, notebooks=("a", "b"), notebooks_dir=nbdir,
              seed=3, epochs=2, progress=False)
    rep = run_pipeline("r1", **kw)
    run_dir = tmp_path / "runs" / "r1"
    assert [s.action for s in rep.stages] == ["ran", "ran"]
    assert json.loads((run_dir / "b" / "metrics.json").read_text()) == {"upstream": f"{data.resolve()}|3", "epochs": 2}
    state = json.loads((run_dir / "run.json").read_text())
    assert state["stages"]["a"]["status"] == "done" and state["stages"]["b"]["status"] == "done"
    assert (run_dir / "notebooks" / "b.ipynb").exists()

    rep2 = run_pipeline("r1", **kw)
    assert [s.action for s in rep2.stages] == ["skipped", "skipped"]
    assert "skip a" in capsys.readouterr().err

    # other parameters under the same name are refused, naming what changed
    with pytest.raises(PipelineError, match="epochs"):
        run_pipeline("r1", **{**kw, "epochs": 5})
    rep3 = run_pipeline("r1", **{**kw, "epochs": 5, "force": True})
    assert [s.action for s in rep3.stages] == ["ran", "ran"]


def test_failing_cell_names_notebook_and_cell_and_keeps_results(tmp_path, nbdir):
    data = tmp_path / "data"
    data.mkdir()
    kw = dict(runs_dir=tmp_path / "runs", data_root=data, notebooks_dir=nbdir, progress=False)
    run_pipeline("r2", notebooks=("a",), **kw)
    a_txt = tmp_path / "runs" / "r2" / "a" / "a.txt"
    before = (a_txt.read_bytes(), a_txt.stat().st_mtime_ns)
    with pytest.raises(PipelineError) as err:
        run_pipeline("r2", notebooks=("a", "c", "b"), **kw)
    msg = str(err.value)
    assert "notebook c failed in cell" in msg and "ValueError: boom in c" in msg
    executed = tmp_path / "runs" / "r2" / "notebooks" / "c.ipynb"
    assert executed.exists()
    nb = nbformat.read(executed, as_version=4)
    assert any(o.get("ename") == "ValueError" for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert (a_txt.read_bytes(), a_txt.stat().st_mtime_ns) == before  # earlier results untouched
    state = json.loads((tmp_path / "runs" / "r2" / "run.json").read_text())
    assert state["stages"]["c"]["status"] == "failed"
    assert "b" not in state["stages"]  # nothing after the failure ran


def test_bad_arguments(tmp_path, nbdir):
    with pytest.raises(ValueError, match="plain folder name"):
        run_pipeline("../x", runs_dir=tmp_path, notebooks_dir=nbdir, data_root=tmp_path)
    with pytest.raises(FileNotFoundError, match="nope"):
        run_pipeline("r", runs_dir=tmp_path, notebooks=("nope",), notebooks_dir=nbdir, data_root=tmp_path)


def test_simulate_stage_reuses_a_matching_simulation_and_refuses_another(tmp_path, nbdir):
    kw = dict(runs_dir=tmp_path / "runs", notebooks=("a",), notebooks_dir=nbdir, progress=False)
    small = {"sim_hand": 8, "sim_weak": 1, "sim_size": 32}
    rep = run_pipeline("s", params=small, **kw)
    assert [(s.name, s.action) for s in rep.stages] == [("simulate", "ran"), ("a", "ran")]
    state = json.loads((tmp_path / "runs" / "s" / "run.json").read_text())
    assert state["stages"]["simulate"]["status"] == "done"
    assert state["data_root"] == str((tmp_path / "runs" / "s" / "simulate").resolve())
    rep2 = run_pipeline("s", params=small, **kw)
    assert [s.action for s in rep2.stages] == ["skipped", "skipped"]
    with pytest.raises(PipelineError, match="--force"):
        run_pipeline("s", params={**small, "sim_size": 48}, **kw)
    rep3 = run_pipeline("s", params={**small, "sim_size": 48}, force=True, **kw)
    assert [(s.action, s.reason) for s in rep3.stages][0] == ("ran", "parameters changed (--force)")
