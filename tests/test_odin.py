"""ODIN's two heads: the length head takes the length signal, the quality head does not."""
import numpy as np
import pytest
import torch

from rmcourse.heads import PairFeatures
from rmcourse.odin import TwoHeadRM, odin_loss, pearson, train_odin


def test_pearson_matches_numpy_and_checks_input():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=50), rng.normal(size=50)
    assert float(pearson(torch.tensor(a), torch.tensor(b))) == pytest.approx(np.corrcoef(a, b)[0, 1], abs=1e-6)
    assert float(pearson(torch.ones(5), torch.arange(5.0))) == 0.0
    with pytest.raises(ValueError, match="equal length"):
        pearson(torch.ones(3), torch.ones(4))


def test_odin_separates_quality_from_length():
    # feature 0 = quality, feature 1 = length; training preferences use both
    g = torch.Generator().manual_seed(0)
    n = 800
    xc, xr = torch.randn(n, 2, generator=g), torch.randn(n, 2, generator=g)
    pref = (xc[:, 0] + xc[:, 1]) > (xr[:, 0] + xr[:, 1])
    chosen = torch.where(pref[:, None], xc, xr)
    rejected = torch.where(pref[:, None], xr, xc)
    pairs = PairFeatures(chosen, rejected)
    plain = train_odin(pairs, chosen[:, 1], rejected[:, 1], epochs=6, length_coef=0.0, ortho_coef=0.0, lr=0.05)
    odin = train_odin(pairs, chosen[:, 1], rejected[:, 1], epochs=6, length_coef=1.0, ortho_coef=1.0, lr=0.05)
    x = torch.cat([chosen, rejected])
    with torch.no_grad():
        plain_corr = float(pearson(plain.model(x), x[:, 1]))
        odin_corr = float(pearson(odin.model.quality(x), x[:, 1]))
        length_corr = float(pearson(odin.model.length(x), x[:, 1]))
        quality_corr = float(pearson(odin.model.quality(x), x[:, 0]))
    assert plain_corr > 0.5 and abs(odin_corr) < 0.1 and length_corr > 0.9 and quality_corr > 0.9
    parts = odin_loss(odin.model, chosen[:8], rejected[:8], chosen[:8, 1], rejected[:8, 1])
    assert set(parts) == {"loss", "bt_loss", "rho_quality", "rho_length", "ortho"}


def test_train_odin_checks_input():
    pairs = PairFeatures(torch.zeros(4, 2), torch.ones(4, 2))
    with pytest.raises(ValueError, match="one value per pair"):
        train_odin(pairs, [1, 2], [1, 2])
    with pytest.raises(ValueError, match="batch_size must be >= 2"):
        train_odin(pairs, [1, 2, 3, 4], [1, 2, 3, 4], batch_size=1)
    with pytest.raises(TypeError, match="PairFeatures"):
        train_odin(torch.zeros(4, 2), [1] * 4, [1] * 4)
    with pytest.raises(ValueError, match="positive int"):
        TwoHeadRM(0)


def test_odin_loss_names_a_feature_width_mismatch():
    model = TwoHeadRM(4)
    x = torch.randn(6, 3)
    with pytest.raises(ValueError, match=r"shape \[pairs, 4\].*got \(6, 3\)"):
        odin_loss(model, x, x, torch.ones(6), torch.ones(6))
    with pytest.raises(ValueError, match=r"shape \[pairs, 4\]"):
        odin_loss(model, torch.randn(4), torch.randn(4), torch.ones(1), torch.ones(1))
    good = torch.randn(6, 4)
    assert torch.isfinite(odin_loss(model, good, good.flip(0), torch.arange(6.0), torch.ones(6))["loss"])
