"""SEA: the worst case over its APGD runs per sample, budgets, seeds, presets, sigmoid regions, specs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from art_seg.attacks import SEA, AutoPGDSegmentation, WorstCaseEnsemble
from art_seg.attacks.sea import DEFAULT_LOSSES, SEA_LOSSES
from art_seg.evaluation.attack_specs import attack_spec
from art_seg.evaluation.robustness import RobustnessEvaluator, read_results, samples_from_arrays
from tests.helpers import sample_dice

EPS = 0.4


def test_sea_dice_is_at_most_every_members_per_sample(trained_segmenter, blob_data) -> None:
    x, y = blob_data
    sea = SEA(trained_segmenter, eps=EPS, max_iter=4, seed=5)
    x_adv = sea.generate(x, y)
    ours = sample_dice(trained_segmenter, x_adv, y)
    # replay every member from the same generator, in SEA's order: one batch, so the random starts line up
    generator = torch.Generator().manual_seed(5)
    x_t, y_t = torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y)
    for i, member in enumerate(sea.members()):
        assert member.apgd_loss == DEFAULT_LOSSES[i] and member.random_start and member.progressive_radius
        assert member.select == "dice"
        x_member = member._perturb(x_t, y_t, None, None, generator)[0].numpy()
        theirs = sample_dice(trained_segmenter, x_member, y)
        np.testing.assert_allclose(sea.scores_[i], theirs, rtol=1e-6)
        assert np.all(ours <= theirs + 1e-12), member.apgd_loss
    np.testing.assert_allclose(ours, sea.scores_.min(axis=0), rtol=1e-6)
    np.testing.assert_array_equal(sea.chosen_, sea.scores_.argmin(axis=0))
    assert sea.scores_.shape == (5, len(x))
    np.testing.assert_array_equal(sea.iterations_, 5 * 4)
    assert DEFAULT_LOSSES == (*SEA_LOSSES, "dice")


def test_sea_stays_in_the_ball_the_clip_box_and_the_mask(trained_segmenter, blob_data, clean_dice) -> None:
    x, y = blob_data
    x_copy = x.copy()
    mask = np.ones_like(x, dtype=bool)
    mask[:, :, :3] = False
    low, high = trained_segmenter.clip_values
    for norm, eps in ((np.inf, EPS), (2, 4.0)):
        x_adv = SEA(trained_segmenter, eps=eps, norm=norm, max_iter=5, seed=0, batch_size=4).generate(x, y, mask=mask)
        delta = (x_adv - x).reshape(len(x), -1)
        size = np.abs(delta).max(1) if norm == np.inf else np.linalg.norm(delta, axis=1)
        assert np.all(size <= eps + 1e-5), (norm, size.max())
        assert x_adv.min() >= low - 1e-6 and x_adv.max() <= high + 1e-6
        np.testing.assert_array_equal(x_adv[~mask], x[~mask])
        if norm == np.inf:
            assert sample_dice(trained_segmenter, x_adv, y).mean() < clean_dice - 0.2
    np.testing.assert_array_equal(x, x_copy)


def test_sea_is_seeded_per_attack_and_the_fast_preset_is_a_quarter(trained_segmenter, blob_data) -> None:
    x, y = blob_data[0][:2], blob_data[1][:2]
    first = SEA(trained_segmenter, eps=EPS, max_iter=2, seed=1)
    a, b = first.generate(x, y), first.generate(x, y)
    again = SEA(trained_segmenter, eps=EPS, max_iter=2, seed=1).generate(x, y)
    np.testing.assert_array_equal(a, again)
    assert not np.array_equal(a, b)  # the generator advances across calls
    assert SEA(trained_segmenter).max_iter == 300
    fast = SEA.fast(trained_segmenter, eps=EPS)
    assert fast.max_iter * len(fast.losses) * 4 <= 300 * len(DEFAULT_LOSSES)
    assert torch.is_tensor(first.generate(torch.as_tensor(x), torch.as_tensor(y)))


def test_sea_attacks_a_sigmoid_region_model(region_segmenter, region_task) -> None:
    x, y = region_task
    clean = sample_dice(region_segmenter, x, y)
    sea = SEA(region_segmenter, eps=EPS, max_iter=5, seed=0)
    x_adv = sea.generate(x, y)
    assert np.abs(x_adv - x).max() <= EPS + 1e-6
    attacked = sample_dice(region_segmenter, x_adv, y)
    assert attacked.mean() < clean.mean() - 0.2, (clean.mean(), attacked.mean())
    np.testing.assert_allclose(attacked, sea.scores_.min(axis=0), rtol=1e-6)


def test_sea_bad_arguments(trained_segmenter) -> None:
    with pytest.raises(ValueError, match="losses must be a non-empty sequence of distinct names"):
        SEA(trained_segmenter, losses=("js", "hinge"))
    with pytest.raises(ValueError, match="losses must be a non-empty sequence of distinct names"):
        SEA(trained_segmenter, losses=())
    with pytest.raises(ValueError, match="max_iter must be >= 1"):
        SEA(trained_segmenter, max_iter=0)
    with pytest.raises(ValueError, match="eps"):
        SEA(trained_segmenter, eps=-1.0)
    with pytest.raises(TypeError, match="progressive_radius must be bool"):
        SEA(trained_segmenter, progressive_radius="yes")
    with pytest.raises(ValueError, match="losses must be a non-empty sequence of distinct names"):
        SEA(trained_segmenter, losses=("dice", "dice"))
    members = SEA(trained_segmenter, losses=["js", "masked_ce", "own", "dice_ce"]).members()
    assert [m.apgd_loss for m in members] == ["js", "masked_ce", "own", "dice_ce"]
    assert [m.track_loss for m in members] == ["ce", "ce", None, None]
    assert len(SEA(trained_segmenter, losses=SEA_LOSSES).members()) == 4  # the paper's protocol
    assert isinstance(members[0], AutoPGDSegmentation) and isinstance(WorstCaseEnsemble(members), WorstCaseEnsemble)


def test_sea_from_specs_and_the_evaluator(trained_segmenter, blob_data, tmp_path) -> None:
    assert attack_spec("sea").build(trained_segmenter, 0.2).max_iter == 300
    fast = attack_spec("SEA-fast").build(trained_segmenter, 0.2)
    assert isinstance(fast, SEA) and fast.max_iter == 75 and fast.eps == 0.2
    x, y = blob_data
    spec = attack_spec("sea")
    cheap = type(spec)(name=spec.name, build=lambda est, eps: SEA(est, eps=eps, max_iter=2))
    evaluator = RobustnessEvaluator(
        {"m": trained_segmenter}, attacks=[cheap], eps=[EPS], regions={"c1": (1,), "c2": (2,)}, seed=0
    )
    evaluator.run(samples_from_arrays(x[:2], y[:2]), tmp_path)
    rows = read_results(tmp_path)
    assert {r["attack"] for r in rows} == {"clean", "SEA"}
    assert len(rows) == 2 * 2
