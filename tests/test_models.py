"""floodnb.models: U-Net shapes, FiLM conditioning, checkpoint round trip and mismatch errors."""

from __future__ import annotations

import json

import pytest
import torch

from floodnb.models import ModelSpec, build_model, check_compatible, load_checkpoint, read_spec, save_checkpoint

S1_NORM = {"name": "sen1floods11_s1", "role": "s1", "bands": ["VV", "VH"], "kind": "db_clip_standard",
           "mean": [0.6851, 0.5235], "std": [0.0820, 0.1102], "source": "preset"}


def _spec(model, **kw) -> ModelSpec:
    base = dict(model_name=model.model_name, model_config=model.config(), inputs=("s1",),
                bands={"s1": ("VV", "VH")}, normalizers={"s1": S1_NORM})
    return ModelSpec(**{**base, **kw})


@pytest.mark.parametrize("name,params", [("unet_tiny", (1e3, 2e4)), ("unet_small", (1.8e6, 2.0e6))])
def test_shapes_and_sizes(name, params):
    torch.manual_seed(0)
    m = build_model(name, in_channels=2)
    n = sum(p.numel() for p in m.parameters())
    assert params[0] < n < params[1]
    x = torch.randn(2, 2, 48, 40)
    assert m(x).shape == (2, 2, 48, 40)


def test_odd_sizes_padded_and_cropped():
    m = build_model("unet_tiny", in_channels=3, depth=3)
    assert m(torch.randn(1, 3, 37, 29)).shape == (1, 2, 37, 29)
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        m(torch.randn(1, 2, 32, 32))
    with pytest.raises(ValueError, match="unknown model"):
        build_model("resnet", in_channels=2)


def test_film_meta_changes_output():
    torch.manual_seed(0)
    m = build_model("unet_tiny", in_channels=2, meta_dim=5).eval()
    x = torch.randn(1, 2, 32, 32)
    a = m(x, torch.zeros(1, 5))
    b = m(x, torch.ones(1, 5))
    assert not torch.allclose(a, b)
    assert torch.equal(a, m(x, torch.zeros(1, 5)))
    with pytest.raises(ValueError, match="meta"):
        m(x)


def test_checkpoint_round_trip_safetensors(tmp_path):
    torch.manual_seed(1)
    m = build_model("unet_tiny", in_channels=2, meta_dim=5).eval()
    spec = _spec(m, meta_dim=5, metrics={"valid": {"water_iou": 0.5}}, config={"seed": 1})
    path = save_checkpoint(tmp_path / "model.safetensors", m, spec=spec)
    m2, spec2 = load_checkpoint(path)
    assert spec2 == spec and spec2["bands"] == {"s1": ("VV", "VH")}
    x, meta = torch.randn(1, 2, 32, 32), torch.randn(1, 5)
    assert torch.equal(m(x, meta), m2(x, meta))
    assert read_spec(tmp_path) == spec  # a run folder -> its model.safetensors
    # the header is plain JSON (no pickle anywhere)
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        assert json.loads(f.metadata()["floodnb_spec"])["inputs"] == ["s1"]
    assert not list(tmp_path.glob(".*tmp"))


def test_checkpoint_pt_weights_only(tmp_path):
    m = build_model("unet_tiny", in_channels=2)
    spec = _spec(m)
    torch.save({"model": m.state_dict(), "floodnb_spec": spec.to_json()}, tmp_path / "last.pt")
    blob = torch.load(tmp_path / "last.pt", weights_only=True)
    assert set(blob) == {"model", "floodnb_spec"}
    m2, spec2 = load_checkpoint(tmp_path / "last.pt")
    assert spec2 == spec
    assert all(torch.equal(a, b) for a, b in zip(m.state_dict().values(), m2.state_dict().values(), strict=True))


def test_bad_checkpoints(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        load_checkpoint(tmp_path / "nope.safetensors")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="bad.safetensors"):
        load_checkpoint(bad)
    with pytest.raises(ValueError, match="must end with .safetensors"):
        m = build_model("unet_tiny", in_channels=2)
        save_checkpoint(tmp_path / "x.pt", m, spec=_spec(m))


def test_check_compatible_names_both_sides():
    m = build_model("unet_tiny", in_channels=2)
    spec = _spec(m)
    check_compatible(spec, bands={"s1": ("VV", "VH")}, normalizers={"s1": dict(S1_NORM, source="fit")})
    with pytest.raises(ValueError, match=r"checkpoint bands \['VV', 'VH'\] but data bands \['VH', 'VV'\]"):
        check_compatible(spec, bands={"s1": ("VH", "VV")}, normalizers={"s1": S1_NORM})
    other = dict(S1_NORM, mean=[0.5, 0.5])
    with pytest.raises(ValueError, match=r"checkpoint normaliser .*0\.6851.* but data normaliser .*0\.5, 0\.5"):
        check_compatible(spec, bands={"s1": ("VV", "VH")}, normalizers={"s1": other})
