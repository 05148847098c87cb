"""The vectorised TD loss against a brute-force double loop over frame pairs (paper eq. 7)."""

import pytest
import torch
import torch.nn.functional as F

from tdrl.model.td_loss import td_channels, temporal_diversity


def td_reference(z: torch.Tensor, frames: int, channels: int) -> torch.Tensor:
    """Eq. 7 literally: per clip, sum over channels of the mean cosine over ordered pairs i != j."""
    n = z.shape[0] // frames
    z5 = z.view(n, frames, *z.shape[1:]).double()
    clips = []
    for b in range(n):
        total = 0.0
        for c in range(channels):
            pair = 0.0
            for i in range(frames):
                for j in range(frames):
                    if i != j:
                        zi, zj = z5[b, i, c].flatten(), z5[b, j, c].flatten()
                        denom = zi.norm() * zj.norm()
                        pair += float(zi @ zj / denom) if denom > 0 else 0.0
            total += pair / (frames * (frames - 1))
        clips.append(total)
    return torch.tensor(sum(clips) / n, dtype=torch.float64)


@pytest.mark.parametrize("n,t,c,hw,k", [(2, 4, 6, 5, 3), (1, 8, 4, 3, 4), (3, 2, 5, 7, 1)])
def test_matches_double_loop(n, t, c, hw, k):
    torch.manual_seed(n * 100 + t)
    z = torch.randn(n * t, c, hw, hw)
    got = temporal_diversity(z, t, k)
    assert torch.allclose(got.double(), td_reference(z, t, k), atol=1e-5, rtol=1e-5)


def test_ratio_zero_is_zero():
    z = torch.randn(8, 4, 3, 3)
    assert temporal_diversity(z, 4, td_channels(0.0, 4)).item() == 0.0


def test_identical_frames_give_one_per_channel():
    frame = torch.randn(1, 5, 4, 4)
    z = frame.repeat(3, 1, 1, 1)  # one clip, T=3, all frames equal: every cosine is 1
    assert temporal_diversity(z, 3, 5).item() == pytest.approx(5.0, abs=1e-5)


def test_zero_maps_give_zero_not_nan():
    z = torch.randn(6, 4, 3, 3, requires_grad=True)
    zz = z.clone()
    zz.data[:, 0] = 0.0  # one channel all zero in every frame
    out = temporal_diversity(zz, 3, 2)
    ref = td_reference(zz.detach(), 3, 2)
    assert torch.isfinite(out) and torch.allclose(out.double(), ref, atol=1e-5)
    out.backward()
    assert torch.isfinite(z.grad).all()


def test_channels_last_input_same_value():
    z = torch.randn(8, 6, 5, 5)
    a = temporal_diversity(z, 4, 3)
    b = temporal_diversity(z.contiguous(memory_format=torch.channels_last), 4, 3)
    assert torch.allclose(a, b, atol=1e-6)


@pytest.mark.parametrize("ratio,c,expected", [(0.5, 64, 32), (0.25, 10, 3), (0.75, 10, 8), (1.0, 7, 7), (0.0, 9, 0)])
def test_td_channels(ratio, c, expected):
    assert td_channels(ratio, c) == expected
