"""RGB <-> Lab against scikit-image (the reference implementation), on real photos and edge colours."""

import numpy as np
import pytest
import torch
from skimage import color as skcolor
from skimage import data

from dlnet.color.lab import LabToRgb, RgbToLab, lab_to_rgb, merge_l_ab, rgb_to_lab


def _to_tensor(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(img).permute(2, 0, 1)[None].float()


EDGE_COLOURS = np.array([[0, 0, 0], [1, 1, 1], [1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [0, 1, 1],
                         [1, 0, 1], [0.5, 0.5, 0.5], [0.01, 0.99, 0.5]], dtype=np.float64)


@pytest.mark.parametrize("name", ["astronaut", "chelsea", "coffee"])
def test_rgb_to_lab_matches_skimage_on_photos(name):
    img = getattr(data, name)()[::4, ::4] / 255.0
    ours = rgb_to_lab(_to_tensor(img))[0].permute(1, 2, 0).numpy()
    ref = skcolor.rgb2lab(img)
    assert np.abs(ours - ref).max() < 1e-2


def test_edge_colours_match_skimage():
    img = EDGE_COLOURS[None]  # (1, N, 3)
    ours = rgb_to_lab(_to_tensor(img))[0].permute(1, 2, 0).numpy()
    ref = skcolor.rgb2lab(img)
    np.testing.assert_allclose(ours, ref, atol=1e-2)
    assert ours[0, 0, 0] == pytest.approx(0, abs=1e-3) and ours[0, 1, 0] == pytest.approx(100, abs=1e-2)
    back = lab_to_rgb(_to_tensor(ref))[0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(back, skcolor.lab2rgb(ref), atol=1e-3)


def test_round_trip_error_is_tiny(capsys):
    img = data.astronaut() / 255.0
    x = _to_tensor(img)
    err = (lab_to_rgb(rgb_to_lab(x)) - x).abs().max().item()
    with capsys.disabled():
        print(f"\nRGB -> Lab -> RGB max abs error on astronaut: {err:.2e} (of 1.0)")
    assert err < 1e-3


def test_lab_to_rgb_clips_out_of_gamut_and_merge():
    lab = torch.tensor([[[[50.0]], [[127.0]], [[-127.0]]]])
    assert lab_to_rgb(lab).min() >= 0 and lab_to_rgb(lab).max() <= 1
    l, ab = lab[:, :1], torch.zeros(1, 2, 1, 1)
    grey = merge_l_ab(l, ab)
    assert torch.allclose(grey, grey[:, :1].expand_as(grey), atol=1e-4)  # a*=b*=0 is grey


def test_module_twins_and_gradients():
    x = torch.rand(2, 3, 8, 8, requires_grad=True)
    lab = RgbToLab()(x)
    LabToRgb()(lab).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_the_torch_free_path_uses_the_threads_omp_num_threads_asks_for(monkeypatch):
    """Without torch loaded, the strips run on OMP_NUM_THREADS threads where it is set (a Ray
    actor with one CPU), never more than the CPUs this process may use, and ignore nonsense."""
    import os
    import sys

    from dlnet.color import fullres

    monkeypatch.setitem(sys.modules, "torch", None)
    cpus = len(os.sched_getaffinity(0))
    for asked, expected in (("1", 1), (str(cpus + 7), cpus), ("0", cpus), ("two", cpus), ("", cpus)):
        monkeypatch.setenv("OMP_NUM_THREADS", asked)
        assert fullres.threads() == expected, asked
