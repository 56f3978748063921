"""ViT geometry for log-mel windows: padding, windowing, positional interpolation, masked attention and pooling."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from evalbench.adapters.vit import (
    build_vit,
    interpolate_pos_embedding,
    pad_windows,
    patch_multiple,
    pool_tokens,
    resize_windows,
    vit_forward,
    window_bounds,
)


@pytest.fixture(scope="module")
def tiny_vit() -> torch.nn.Module:
    torch.manual_seed(0)
    vit = build_vit(224, 32, 2, 2, 16, 32, "1to3")
    with torch.no_grad():  # make the CLS token and positions matter
        vit.class_token.normal_()
        vit.encoder.pos_embedding.normal_()
    return vit.eval()


@pytest.mark.parametrize(("n", "expected"), [(64, 64), (96, 96), (97, 128), (58, 64), (1, 32), (0, 32), (143, 160)])
def test_patch_multiple(n: int, expected: int) -> None:
    assert patch_multiple(n, 32) == expected


def test_window_bounds_long_clip() -> None:
    # 250 valid frames -> 96, 96 and a 58-frame last window (58 >= 48 stays on its own)
    for min_tail in (0, 48):
        assert window_bounds(250, 96, min_tail) == [(0, 96), (96, 192), (192, 250)]
    # a 5-frame sliver joins the previous window unless merging is off
    assert window_bounds(197, 96, 48) == [(0, 96), (96, 197)]
    assert window_bounds(197, 96, 0) == [(0, 96), (96, 192), (192, 197)]
    # 1 s at 16 kHz = 97 valid frames: one window, not 96 + 1
    assert window_bounds(97, 96, 48) == [(0, 97)]
    assert window_bounds(192, 96, 48) == [(0, 96), (96, 192)]


def test_window_bounds_short_clip() -> None:
    assert window_bounds(57, 96, 48) == [(0, 57)]  # shorter than a window and than min_tail: still one window
    assert window_bounds(96, 96, 48) == [(0, 96)]
    assert window_bounds(0, 96, 48) == [(0, 1)]  # the front end always keeps one frame


def test_pad_windows_sizes_and_grids() -> None:
    windows = [torch.full((64, w), float(i + 1)) for i, w in enumerate((96, 58, 130))]
    images, grids = pad_windows(windows, 32)
    assert images.shape == (3, 1, 64, 160)
    assert grids.tolist() == [[2, 3], [2, 2], [2, 5]]
    assert bool((images[1, 0, :, :58] == 2).all()) and bool((images[1, 0, :, 58:] == 0).all())
    assert bool((images[0, 0, :, 96:] == 0).all()) and bool((images[2] == 3).sum() == 64 * 130)
    # frequency padded to a patch multiple too (80 mels -> 96 = 3 patches high)
    images, grids = pad_windows([torch.ones(80, 40)], 32)
    assert images.shape == (1, 1, 96, 64) and grids.tolist() == [[3, 2]]


def test_resize_windows_match_bilinear_per_window() -> None:
    gen = torch.Generator().manual_seed(0)
    windows = [torch.randn(64, w, generator=gen) for w in (96, 58, 96, 7)]
    images = resize_windows(windows, 224)
    assert images.shape == (4, 1, 224, 224)
    for img, w in zip(images, windows, strict=True):
        ref = F.interpolate(w[None, None], size=(224, 224), mode="bilinear", align_corners=False)
        torch.testing.assert_close(img, ref[0])
    # a window constant along time stays constant along time: only its own frames are stretched
    ramp = torch.linspace(-1, 1, 64)[:, None].expand(64, 30)
    img = resize_windows([ramp.contiguous()], 224)[0, 0]
    torch.testing.assert_close(img, img[:, :1].expand(224, 224))


def test_pos_embedding_identity_and_cls() -> None:
    pos = torch.randn(1, 50, 8)
    assert torch.equal(interpolate_pos_embedding(pos, (7, 7)), pos)
    out = interpolate_pos_embedding(pos, (2, 3))
    assert out.shape == (1, 7, 8)
    assert torch.equal(out[:, 0], pos[:, 0])
    with pytest.raises(ValueError, match="square"):
        interpolate_pos_embedding(torch.randn(1, 11, 8), (2, 3))


def _grid_values(fn, rows: int, cols: int) -> torch.Tensor:
    """``fn`` at the cell centres of a rows × cols grid on the unit square."""
    y = (torch.arange(rows) + 0.5) / rows
    x = (torch.arange(cols) + 0.5) / cols
    return fn(y[:, None], x[None, :])


@pytest.mark.parametrize("grid", [(2, 3), (5, 9), (3, 3)])
def test_pos_embedding_smooth_grid_close_to_analytic(grid: tuple[int, int]) -> None:
    def smooth(y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return torch.sin(math.pi * y) * torch.cos(math.pi * x)

    pos = torch.cat([torch.full((1, 1, 1), 9.0), _grid_values(smooth, 7, 7).reshape(1, 49, 1)], dim=1)
    out = interpolate_pos_embedding(pos, grid)[0, 1:, 0].reshape(grid)
    err = (out - _grid_values(smooth, *grid)).abs().max().item()
    assert err < 0.03, err  # measured 0.027 for 2×3, 0.021 for 5×9 and 3×3


def test_pos_embedding_constant_grid_stays_constant() -> None:
    # bicubic weights sum to one (PyTorch's a = -0.75 kernel does not reproduce
    # linear ramps exactly, but it does reproduce constants)
    pos = torch.cat([torch.zeros(1, 1, 2), torch.tensor([0.25, -1.5]).expand(1, 49, 2)], dim=1)
    for grid in ((2, 3), (2, 5), (14, 3)):
        out = interpolate_pos_embedding(pos, grid)[0, 1:]
        torch.testing.assert_close(out, torch.tensor([0.25, -1.5]).expand_as(out), atol=1e-6, rtol=0)


def test_vit_forward_matches_torchvision_on_square_images(tiny_vit: torch.nn.Module) -> None:
    images = torch.randn(2, 1, 224, 224, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        tokens, pad = vit_forward(tiny_vit, images)
        reference = tiny_vit(images)  # heads are Identity: torchvision returns the final [CLS]
    assert tokens.shape == (2, 50, 16) and pad is None
    torch.testing.assert_close(tokens[:, 0], reference, atol=1e-5, rtol=1e-5)


def test_padded_patches_are_ignored(tiny_vit: torch.nn.Module) -> None:
    gen = torch.Generator().manual_seed(2)
    own = torch.randn(1, 1, 64, 64, generator=gen)  # a 2×2 patch grid
    canvas = torch.zeros(2, 1, 64, 128)
    canvas[:, :, :, :64] = own
    canvas[1, :, :, 64:] = 100 * torch.randn(1, 64, 64, generator=gen)  # garbage in padding-only patches
    grids = torch.tensor([[2, 2], [2, 2]])
    with torch.inference_mode():
        tokens, pad = vit_forward(tiny_vit, canvas, grids)
        alone, alone_pad = vit_forward(tiny_vit, own)  # the window on its own 2×2 grid
    assert pad is not None and alone_pad is None
    assert pad[0].tolist() == [False, False, False, True, True, False, False, True, True]
    for output in ("cls", "mean_patches"):
        pooled = pool_tokens(tokens, pad, output)
        reference = pool_tokens(alone, None, output)
        torch.testing.assert_close(pooled[0], pooled[1], atol=1e-5, rtol=0)
        torch.testing.assert_close(pooled[0], reference[0], atol=1e-5, rtol=0)
    # sanity: changing a real patch does change the output
    canvas[1, :, :, :8] += 1.0
    with torch.inference_mode():
        changed, pad = vit_forward(tiny_vit, canvas, grids)
    assert (changed[1, 0] - changed[0, 0]).abs().max() > 1e-3


def test_mixed_grids_in_one_batch_equal_separate_runs(tiny_vit: torch.nn.Module) -> None:
    gen = torch.Generator().manual_seed(3)
    windows = [torch.randn(64, w, generator=gen) for w in (96, 40, 130)]
    images, grids = pad_windows(windows, 32)
    with torch.inference_mode():
        tokens, pad = vit_forward(tiny_vit, images, grids)
        batched = pool_tokens(tokens, pad, "mean_patches")
        for i, w in enumerate(windows):
            img, grid = pad_windows([w], 32)
            t, p = vit_forward(tiny_vit, img, grid)
            assert p is None  # alone, no patch is padding-only
            torch.testing.assert_close(batched[i], pool_tokens(t, p, "mean_patches")[0], atol=1e-5, rtol=0)


def test_pool_tokens_masked_mean() -> None:
    tokens = torch.tensor([[[9.0], [1.0], [3.0], [100.0]]])
    pad = torch.tensor([[False, False, False, True]])
    assert pool_tokens(tokens, pad, "cls").item() == 9.0
    assert pool_tokens(tokens, pad, "mean_patches").item() == 2.0
    assert pool_tokens(tokens, None, "mean_patches").item() == pytest.approx(104 / 3)


def test_grids_outside_the_canvas_are_rejected(tiny_vit: torch.nn.Module) -> None:
    with pytest.raises(ValueError, match="within"):
        vit_forward(tiny_vit, torch.zeros(1, 1, 64, 64), torch.tensor([[2, 3]]))


# --- token drop (MSN's patch drop) and padding share one mechanism: a keep mask over the tokens ---------------


def _masked_reference(vit: torch.nn.Module, images: torch.Tensor, grids: torch.Tensor | None, keep: torch.Tensor):
    """The pre-token-drop computation: every token runs, the not-kept ones masked out of attention as keys."""
    from evalbench.adapters.vit import _block, _grid_positions

    x = vit.conv_proj(images)
    n, _, rows, cols = x.shape
    x = x.flatten(2).transpose(1, 2)
    if grids is None:
        pos = interpolate_pos_embedding(vit.encoder.pos_embedding, (rows, cols))
    else:
        pos = _grid_positions(vit.encoder.pos_embedding, grids, rows, cols)
    x = torch.cat([vit.class_token.expand(n, -1, -1), x], dim=1) + pos
    for block in vit.encoder.layers:
        x = _block(block, x, ~keep)
    return vit.encoder.ln(x)


def test_keep_all_equals_the_plain_path(tiny_vit: torch.nn.Module) -> None:
    images = torch.randn(3, 1, 224, 224, generator=torch.Generator().manual_seed(4))
    with torch.inference_mode():
        plain, none = vit_forward(tiny_vit, images)
        kept, mask = vit_forward(tiny_vit, images, keep=torch.ones(3, 50, dtype=torch.bool))
    assert none is None and mask is None
    torch.testing.assert_close(kept, plain, atol=1e-6, rtol=0)


def test_dropping_tokens_equals_masking_them_out_of_attention(tiny_vit: torch.nn.Module) -> None:
    from evalbench.augment.views import patch_keep

    gen = torch.Generator().manual_seed(5)
    images = torch.randn(4, 1, 224, 224, generator=gen)
    keep = patch_keep(4, 50, 0.3, gen)  # same count in every image: the tokens are removed (gathered)
    with torch.inference_mode():
        dropped, mask = vit_forward(tiny_vit, images, keep=keep)
        reference = _masked_reference(tiny_vit, images, None, keep)
    assert mask is not None and torch.equal(mask, ~keep)
    # [CLS] and every kept token: the same keys take part, so the same outputs up to float rounding (1e-5)
    torch.testing.assert_close(dropped[:, 0], reference[:, 0], atol=1e-5, rtol=0)
    torch.testing.assert_close(dropped[keep], reference[keep], atol=1e-5, rtol=0)
    assert bool((dropped[~keep] == 0).all())
    # ragged counts take the masked route and give the same outputs as each image alone (gathered)
    keep[1, 1:20] = False
    with torch.inference_mode():
        ragged, mask = vit_forward(tiny_vit, images, keep=keep)
        for i in range(4):
            alone, _ = vit_forward(tiny_vit, images[i : i + 1], keep=keep[i : i + 1])
            torch.testing.assert_close(ragged[i], alone[0], atol=1e-5, rtol=0)
    # a dropped patch has no influence at all: its pixels get no gradient
    pixels = images[:1].clone().requires_grad_(True)
    one = torch.ones(1, 50, dtype=torch.bool)
    one[0, 1] = False  # the top-left patch (pixels [0:32, 0:32])
    weights = torch.randn(16, generator=gen)  # (a plain sum of a LayerNorm output has no gradient)
    (vit_forward(tiny_vit, pixels, keep=one)[0][:, 0] @ weights).sum().backward()
    assert float(pixels.grad[0, 0, :32, :32].abs().max()) == 0.0 and float(pixels.grad[0, 0, :32, 32:].abs().max()) > 0
    with pytest.raises(ValueError, match="CLS"):
        vit_forward(tiny_vit, images[:1], keep=~one)


@pytest.mark.parametrize("widths", [(96, 40, 130), (64, 64)])
def test_padding_path_unchanged(tiny_vit: torch.nn.Module, widths: tuple[int, ...]) -> None:
    """Grids now go through the keep mask (and equal counts through the gather); outputs match the old route."""
    from evalbench.adapters.vit import grid_keep

    gen = torch.Generator().manual_seed(6)
    images, grids = pad_windows([torch.randn(64, w, generator=gen) for w in widths], 32)
    if len(widths) == 2:  # two 2x2 windows on a wider canvas: equal counts with padding (gathered)
        images, grids = F.pad(images, (0, 64)), grids
    rows, cols = images.shape[-2] // 32, images.shape[-1] // 32
    real = grid_keep(grids, rows, cols)
    with torch.inference_mode():
        tokens, pad = vit_forward(tiny_vit, images, grids)
        reference = _masked_reference(tiny_vit, images, grids, real)
    assert torch.equal(pad, ~real)
    for output in ("cls", "mean_patches"):
        torch.testing.assert_close(
            pool_tokens(tokens, pad, output), pool_tokens(reference, ~real, output), atol=1e-5, rtol=0
        )
