"""MAP 7.3 fairness: the projected update against its defining identities, the metrics
against a hand count, and a debiased run that narrows the gap a baseline run leaves."""

import numpy as np
import pytest
import torch

from deepatlas.trust.debias import Adversary, fairness_metrics, projected_update


def test_projected_update_removes_the_adversarys_direction():
    torch.manual_seed(0)
    grad_p = [torch.randn(5, 3, dtype=torch.float64), torch.randn(5, dtype=torch.float64)]
    grad_a = [torch.randn(5, 3, dtype=torch.float64), torch.randn(5, dtype=torch.float64)]
    for alpha in (0.0, 0.7):
        update = projected_update(grad_p, grad_a, alpha)
        for g, a, p in zip(update, grad_a, grad_p):
            # g . a = -alpha |a|^2: nothing of the step helps the adversary, alpha hurts it
            torch.testing.assert_close((g * a).sum(), -alpha * a.square().sum())
            # and what is left of grad_p is its component orthogonal to a
            orthogonal = p - (p * a).sum() / a.square().sum() * a
            torch.testing.assert_close(g + alpha * a, orthogonal)


def test_adversary_sees_the_label_only_for_equalized_odds():
    logit, y = torch.randn(6), torch.tensor([0.0, 1, 0, 1, 1, 0])
    odds, parity = Adversary("equalized-odds"), Adversary("demographic-parity")
    assert odds.linear.in_features == 3 and parity.linear.in_features == 1
    assert odds(logit, y).shape == parity(logit, y).shape == (6,)
    with torch.no_grad():
        odds.linear.weight.copy_(torch.tensor([[1.0, 0.0, 0.0]]))  # reads s * y only
        odds.linear.bias.zero_()
    assert torch.all(odds(logit, y)[y == 0] == 0)
    with torch.no_grad():
        odds.linear.weight.copy_(torch.tensor([[0.0, 0.0, 2.0]]))  # y alone: a class intercept
    assert odds(logit, y).tolist() == (2 * y).tolist()


def test_a_hidden_layer_lets_the_adversary_see_what_the_mean_score_hides():
    """Scores with the same mean in both groups but different spreads: the logistic adversary
    (the paper's) stays at chance, ln 2 by symmetry; one hidden layer tells the groups apart."""
    logit = torch.tensor([-3.0, 3.0, 0.0, 0.0] * 64)  # group 1 at s ~ 0 or 1, group 0 at 0.5
    z = torch.tensor([1.0, 1.0, 0.0, 0.0] * 64)
    y = torch.ones(len(z))
    losses = {}
    for hidden in (0, 16):
        torch.manual_seed(0)
        adversary = Adversary("equalized-odds", hidden)
        optimizer = torch.optim.Adam(adversary.parameters(), lr=0.05)
        for _ in range(300):
            loss = torch.nn.functional.binary_cross_entropy_with_logits(adversary(logit, y), z)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        losses[hidden] = loss.item()
    assert losses[0] == pytest.approx(np.log(2), abs=1e-3)
    assert losses[16] < 0.1


def test_fairness_metrics_against_a_hand_count():
    #                  privileged (s=0)          unprivileged (s=1)
    y = np.array([1, 1, 0, 0, 1, 0, 0, 0, 1, 1, 0, 0])
    p = np.array([1, 1, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0])
    s = np.array([0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1])
    # privileged: TPR 2/3, FPR 1/3, selection 3/6; unprivileged: TPR 1/2, FPR 0, selection 1/6
    m = fairness_metrics(y, p, s)
    assert m["acc"] == pytest.approx(9 / 12)
    assert m["average_odds_difference"] == pytest.approx(((0 - 1 / 3) + (1 / 2 - 2 / 3)) / 2)
    assert m["equalized_odds_difference"] == pytest.approx(1 / 3)
    assert m["demographic_parity_difference"] == pytest.approx(3 / 6 - 1 / 6)


def test_debiasing_narrows_the_gap_the_baseline_leaves(tmp_path):
    """The recipe's adversary (one hidden layer) on a small fake Adult whose income depends on
    sex far more than the real one's: alpha = 1 (the recipe's 0.1 is chosen for real Adult),
    and 20 epochs, since 10 epochs of these 1,350 training rows (210 steps) left the hidden
    adversary too little training to push (the logistic one narrowed the gap in 10)."""
    from fakedata import make_adult

    from deepatlas.config import load_recipe
    from deepatlas.tasks import fit

    data = make_adult(tmp_path / "data", n_train=1500, n_test=1500)
    gaps = {}
    for adversary in (False, True):
        config = load_recipe("debias-adult", [f"data.dir={data}", "train.epochs=20",
                                              "train.tensorboard=false", "train.batch_size=64",
                                              "optim.lr=0.01", "fairness.alpha=1.0",
                                              "schedule.name=constant",
                                              f"fairness.adversary={str(adversary).lower()}"])
        assert config.fairness.adversary_hidden == 16
        summary = fit(config, tmp_path / str(adversary), progress=False)
        gaps[adversary] = abs(summary["test_average_odds_difference"])
    assert gaps[False] > 0.05  # the fake data's income depends on sex: the baseline learns it
    assert gaps[True] < gaps[False] / 2
