"""experiments/soup.py: the weighted mean of two models' weights, as a loadable fp16 model file."""

import json
import subprocess
import sys
from pathlib import Path

import torch

from _tiny_model import tiny_model

from dlnet.model.weights import images_seen, load_model, save_model

SCRIPT = Path(__file__).resolve().parents[1] / "experiments" / "soup.py"


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=120)


def test_a_soup_is_the_weighted_mean_and_keeps_the_larger_budget(tmp_path):
    a, b = tiny_model(seed=0), tiny_model(seed=1)
    fa = save_model(a, tmp_path / "a.safetensors", extra={"images_seen": 100})
    fb = save_model(b, tmp_path / "b.safetensors", extra={"images_seen": 300})
    r = _run(f"{fa}=3", f"{fb}=1", "-o", str(tmp_path / "soup.safetensors"))
    assert r.returncode == 0, r.stderr
    soup = load_model(tmp_path / "soup.safetensors")
    name = next(k for k, v in a.state_dict().items() if v.is_floating_point() and v.numel() > 1)
    want = 0.75 * a.state_dict()[name] + 0.25 * b.state_dict()[name]
    assert torch.allclose(soup.state_dict()[name], want, atol=2e-3)  # fp16 file
    assert images_seen(tmp_path / "soup.safetensors") == 300
    from safetensors import safe_open

    with safe_open(str(tmp_path / "soup.safetensors"), framework="pt") as f:
        assert [i["weight"] for i in json.loads(f.metadata()["soup"])] == [3.0, 1.0]


def test_a_soup_never_overwrites_and_refuses_other_architectures(tmp_path):
    fa = save_model(tiny_model(), tmp_path / "a.safetensors")
    from dlnet.model.net import DLNet, ModelConfig

    fb = save_model(DLNet(ModelConfig(encoder="efficientnet_lite0", decoder_channels=(16, 16, 8, 8, 8, 8, 8))),
                    tmp_path / "b.safetensors")
    (tmp_path / "taken.safetensors").write_bytes(b"x")
    r = _run(f"{fa}=1", f"{fa}=1", "-o", str(tmp_path / "taken.safetensors"))
    assert r.returncode == 2 and "not overwritten" in r.stderr
    assert (tmp_path / "taken.safetensors").read_bytes() == b"x"
    r = _run(f"{fa}=1", f"{fb}=1", "-o", str(tmp_path / "mixed.safetensors"))
    assert r.returncode == 2 and "differ in architecture" in r.stderr and r.stderr.count("\n") <= 3
    assert not (tmp_path / "mixed.safetensors").exists()


def test_a_fine_tune_that_added_layers_soups_with_its_start(tmp_path):
    """The hint convs at the skips exist only in the fine-tune: kept as they are, the rest averaged."""
    from dlnet.model.net import DLNet, ModelConfig

    def hint_model(skips: bool, seed: int) -> DLNet:
        torch.manual_seed(seed)
        return DLNet(ModelConfig(encoder="efficientnet_lite0", decoder="unet", hints=True, hint_skips=skips,
                                 decoder_channels=(32, 16, 16, 8)))

    start, tuned = hint_model(False, 0), hint_model(True, 1)
    for conv in tuned.hint_convs:  # trained away from their zero start
        torch.nn.init.normal_(conv.weight)
    start.saturation = 0.8
    fs = save_model(start, tmp_path / "start.safetensors")
    ft = save_model(tuned, tmp_path / "tuned.safetensors")
    r = _run(f"{fs}=1", f"{ft}=1", "-o", str(tmp_path / "soup.safetensors"), "--saturation", "0.9")
    assert r.returncode == 0, r.stderr
    soup = load_model(tmp_path / "soup.safetensors")
    assert soup.config.hint_skips and soup.saturation == 0.9
    got, a, b = soup.state_dict(), start.state_dict(), tuned.state_dict()
    assert torch.allclose(got["hint_convs.0.weight"], b["hint_convs.0.weight"], atol=2e-3)
    name = next(k for k, v in a.items() if v.is_floating_point() and v.numel() > 1)
    assert torch.allclose(got[name], (a[name] + b[name]) / 2, atol=2e-3)
    r = _run(f"{fs}=1", f"{ft}=1", "-o", str(tmp_path / "bad.safetensors"), "--saturation", "-1")
    assert r.returncode == 2 and "Traceback" not in r.stderr
