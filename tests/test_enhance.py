import torch
import torch.nn.functional as F

from risam.modeling.enhance import FeatureEnhancement


def _mlp(module, x):
    pixels = x.permute(0, 2, 3, 1)
    hidden = F.gelu(pixels @ module.fc1.weight.T + module.fc1.bias)
    return (hidden @ module.fc2.weight.T + module.fc2.bias).permute(0, 3, 1, 2)


def _cba(module, x):
    y = F.conv2d(x, module.conv.weight, padding=1)
    norm = module.norm
    scale = (norm.weight / torch.sqrt(norm.running_var + norm.eps))[None, :, None, None]
    y = (y - norm.running_mean[None, :, None, None]) * scale + norm.bias[None, :, None, None]
    return F.gelu(y)


def _randomize_batch_norms(module):
    for norm in (module.fuse_early.norm, module.fuse_final.norm):
        norm.running_mean.normal_()
        norm.running_var.uniform_(0.5, 2.0)
        torch.nn.init.normal_(norm.weight)
        torch.nn.init.normal_(norm.bias)


def test_feature_enhancement_matches_equations_1_and_2():
    torch.manual_seed(0)
    module = FeatureEnhancement(image_dim=12, dim=8).eval()
    _randomize_batch_norms(module)
    shallow, middle, deep = (torch.randn(2, 12, 5, 6) for _ in range(3))

    early = _cba(module.fuse_early, torch.cat([_mlp(module.mlp_shallow, shallow), _mlp(module.mlp_middle, middle)], 1))
    expected = _cba(module.fuse_final, torch.cat([_mlp(module.mlp_early, early), _mlp(module.mlp_deep, deep)], 1))

    with torch.no_grad():
        out = module(shallow, middle, deep)
    assert out.shape == (2, 8, 5, 6)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)


def test_feature_enhancement_keeps_taps_in_their_roles():
    torch.manual_seed(1)
    module = FeatureEnhancement(image_dim=12, dim=8).eval()
    _randomize_batch_norms(module)
    shallow, middle, deep = (torch.randn(1, 12, 4, 4) for _ in range(3))
    with torch.no_grad():
        out = module(shallow, middle, deep)
        swapped = module(deep, middle, shallow)
    assert not torch.allclose(out, swapped, atol=1e-3)


def test_cba_uses_three_by_three_neighbourhoods():
    torch.manual_seed(2)
    module = FeatureEnhancement(image_dim=4, dim=4).eval()
    deep = torch.zeros(1, 4, 7, 7)
    base = torch.zeros(1, 4, 7, 7)
    bumped = base.clone()
    bumped[0, :, 3, 3] = 5.0
    with torch.no_grad():
        change = (module(bumped, base, deep) - module(base, base, deep)).abs().sum(1)[0]
    # Two stacked 3x3 convolutions: a change at (3, 3) reaches at most 2 pixels away.
    assert change[1:6, 1:6].min() > 0
    assert change[0].max() == 0 and change[:, 0].max() == 0
