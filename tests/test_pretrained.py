"""Shipped checkpoints: packaging (float16 weights, card in the spec), lookup by name, clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _checkpoints import save_s1_checkpoint

from floodnb.models import load_checkpoint, pretrained, read_spec


def _checkpoint(path):
    return save_s1_checkpoint(path, config={"epochs": 3})


def test_package_halves_the_weights_keeps_the_spec_and_predicts_alike(tmp_path):
    src = _checkpoint(tmp_path / "src.safetensors")
    card = {"trained_on": "simulated", "command": "floodnb run"}
    dest = pretrained.package_checkpoint(src, tmp_path / "ship" / "m.safetensors", card=card)
    assert dest.stat().st_size < 0.6 * src.stat().st_size
    spec = read_spec(dest)
    assert spec.config["card"] == card and spec.config["epochs"] == 3
    assert spec.normalizers == read_spec(src).normalizers
    a, _ = load_checkpoint(src)
    b, _ = load_checkpoint(dest)
    assert all(p.dtype == torch.float32 for p in b.parameters())
    x = torch.randn(2, 2, 32, 32)
    with torch.no_grad():
        pa, pb = torch.softmax(a(x), 1), torch.softmax(b(x), 1)
    assert torch.allclose(pa, pb, atol=1e-2)
    assert (pa.argmax(1) == pb.argmax(1)).float().mean() > 0.99
    with pytest.raises(ValueError, match=r"m\.pt must end with \.safetensors"):
        pretrained.package_checkpoint(src, tmp_path / "m.pt", card=card)


def test_lookup_by_name_and_unknown_names(tmp_path, monkeypatch):
    monkeypatch.setattr(pretrained, "PRETRAINED_DIR", tmp_path)
    assert pretrained.available() == {}
    with pytest.raises(ValueError, match="no shipped model named 'x'; shipped: none"):
        pretrained.pretrained_path("x")
    pretrained.package_checkpoint(_checkpoint(tmp_path / "a.tmp.safetensors"), tmp_path / "b.safetensors",
                                  card={"k": 1})
    (tmp_path / "a.tmp.safetensors").unlink()
    assert list(pretrained.available()) == ["b"]
    model, spec = pretrained.load_pretrained("b")
    assert spec.config["card"] == {"k": 1} and not model.training


def test_ship_scores_on_real_chips_and_writes_the_card(tmp_path, monkeypatch, real_root):
    from floodnb.experiment import ship

    monkeypatch.setattr(pretrained, "PRETRAINED_DIR", tmp_path / "shipped")
    src = _checkpoint(tmp_path / "src.safetensors")
    dest = ship.ship(src, name="m", real_root=real_root, trained_with="floodnb run --name x")
    card = read_spec(dest).config["card"]
    assert card["trained_with"] == "floodnb run --name x" and "simulated" in card["trained_on"]
    scores = card["real_chips"]["scores"]
    assert {"m", "otsu_event", "otsu_chip", "vh<-24dB"} <= set(scores)
    assert all(0.0 <= s["water_iou"] <= 1.0 for s in scores.values() if s["water_iou"] == s["water_iou"])
    md = (tmp_path / "shipped" / "MODEL_CARD.md").read_text()
    assert "## `m`" in md and "floodnb run --name x" in md and "| otsu_event | threshold |" in md
    assert ship.main([str(src), "--name", "n", "--real-root", str(tmp_path / "nope"), "--trained-with", "x"]) == 2


def test_the_shipped_model_is_a_level_aware_s1_model_with_a_card():
    """The packaged default (trained on simulated data only) keeps absolute backscatter level."""
    import numpy as np

    from floodnb.data.normalize import Normalizer

    assert pretrained.DEFAULT in pretrained.available()
    model, spec = pretrained.load_pretrained()
    assert spec.inputs == ("s1",) and spec.model_config["norm"] == "batch"
    card = spec.config["card"]
    assert "simulated" in card["trained_on"] and card["real_chips"]["scores"][pretrained.DEFAULT]["water_iou"] > 0
    norm = Normalizer.from_dict(spec.normalizers["s1"])

    def water(vv: float, vh: float) -> float:
        x = np.stack([np.full((64, 64), vv, np.float32), np.full((64, 64), vh, np.float32)])
        with torch.no_grad():
            return float(torch.softmax(model(torch.from_numpy(norm(x))[None]), 1)[0, 1].mean())

    dark, bright = water(-20.0, -28.0), water(-6.0, -13.0)
    assert dark > 0.5 > bright and dark - bright > 0.3


def test_predict_without_a_checkpoint_uses_the_shipped_model(real_root, tmp_path, capsys):
    import rasterio

    from floodnb.cli import main

    scene = next(p for p in sorted((real_root / "HandLabeled" / "S1Hand").glob("*_S1Hand.tif"))
                 if "Paraguay" not in p.name)
    out = tmp_path / "maps"
    assert main(["predict", str(scene), "--out-dir", str(out), "--tile", "64", "--overlap", "16"]) == 0
    assert f"model: shipped {pretrained.DEFAULT}" in capsys.readouterr().out
    with rasterio.open(out / f"{scene.stem}_water.tif") as ds, rasterio.open(scene) as src:
        assert ds.shape == src.shape and ds.crs == src.crs
        assert set(np.unique(ds.read(1))) <= {-1, 0, 1}
    assert main(["predict", str(scene), "--model", "nosuch", "--out-dir", str(tmp_path / "x")]) == 2
    assert "no shipped model named 'nosuch'" in capsys.readouterr().err
