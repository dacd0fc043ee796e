import pytest

from jointaug.config import ConfigError, load_config, read_config, save_config


def test_paper_profile_holds_the_papers_numbers():
    c = load_config("paper")
    assert c.classify.image_size == 256 and c.classify.growth_rate == 32
    assert c.classify.block_config == [6, 12, 24, 16]
    assert c.classify.lr == 1e-4 and c.classify.batch_size == 32
    assert c.classify.eval_every_epochs == 10 and c.classify.patience_samples == 500_000
    assert c.classify.seeds == [0, 1, 2] and c.classify.rotate_deg == 30
    assert c.classify.crop_pad == 32 and c.classify.flip_prob == 0.5 and c.classify.crop_prob == 0.5
    assert c.split.folds == 5
    assert c.diffusion.image_size == 128 and c.diffusion.timesteps == 500
    assert c.diffusion.sampler == "ddpm"
    assert (c.sampler.p_any, c.sampler.p_group, c.sampler.p_label, c.sampler.p_high) == (
        0.9,
        0.75,
        0.5,
        0.5,
    )
    assert (c.perlin.min_pixels, c.perlin.max_fraction, c.perlin.max_tries) == (25, 0.9, 5000)
    assert c.experiment.sizes == [8192] and c.experiment.mixtures == [20, 40, 60, 80]
    assert c.natural.max_images == 500 and c.natural.n_labelled == 50


def test_demo_is_smaller_and_overrides_apply():
    c = load_config("demo", ["classify.lr=3e-4", "split.folds=3", "classify.seeds=[1, 2]"])
    assert c.classify.image_size < 256 and c.profile == "demo"
    assert c.classify.lr == 3e-4 and c.split.folds == 3 and c.classify.seeds == [1, 2]


@pytest.mark.parametrize(
    "override, match",
    [
        ("classify.lr", "key=value"),
        ("classify.nope=1", "nope"),
        ("classify.lr=abc", "lr"),
        ("classify.lr: [1", "key=value"),
    ],
)
def test_bad_overrides_are_clear(override, match):
    with pytest.raises(ConfigError, match=match):
        load_config("demo", [override])


def test_unknown_profile():
    with pytest.raises(ConfigError, match="unknown profile"):
        load_config("fast")


def test_save_and_read_round_trip(tmp_path):
    c = load_config("demo", ["classify.lr=0.002"])
    save_config(c, tmp_path / "config.yaml")
    assert read_config(tmp_path / "config.yaml") == c


def test_every_shipped_profile_loads_and_best_is_paper_plus_generator_options():
    from jointaug.config import PROFILES

    configs = {p: load_config(p) for p in PROFILES}
    assert all(c.profile == p for p, c in configs.items())
    paper, best = configs["paper"].model_dump(), configs["paper-best"].model_dump()
    options = {
        "cond_dropout",
        "guidance_scale",
        "min_snr_gamma",
        "lr_schedule",
        "warmup_steps",
        "upsample",
        "stop_on_fidelity",  # train to a criterion (diffusion/criterion.py)
        "fidelity_every",
        "fidelity_patience",
    }
    assert {
        k for k in paper["diffusion"] if paper["diffusion"][k] != best["diffusion"][k]
    } <= options
    assert best["diffusion"]["cond_dropout"] > 0 and best["diffusion"]["guidance_scale"] > 1
    # and the classifier's left/right option (issue 20): on in paper-best, off in the paper
    assert (paper["classify"]["lr_aware"], best["classify"]["lr_aware"]) == (False, True)
    best["classify"]["lr_aware"] = False
    assert {k: v for k, v in paper.items() if k not in ("diffusion", "profile")} == {
        k: v for k, v in best.items() if k not in ("diffusion", "profile")
    }
    assert configs["cpu"].classify.lr_aware and not configs["demo"].classify.lr_aware
    # the paper keeps the paper's method: every option off
    d = configs["paper"].diffusion
    assert (d.cond_dropout, d.guidance_scale, d.min_snr_gamma, d.lr_schedule, d.upsample) == (
        0.0,
        1.0,
        0.0,
        "constant",
        "nearest",
    )
    assert configs["cpu"].diffusion.cond_dropout > 0


def test_small_profiles_keep_the_papers_perlin_rule_in_classifier_pixels():
    """The paper keeps >= 25 px of its 256-px classifier image per varied region; the CPU
    profiles classify at 64 px, so their rule must still leave >= 25 classifier pixels
    (with the paper's 25 px at 256 a region could shrink to 1.6 px at 64). On 256-px masks
    a wrist-sized region is varied by that rule; a finger-joint-sized one stays whole (demo:
    the paper's rule) or, with ``perlin.min_fraction`` (cpu), is varied keeping that share."""
    import numpy as np

    from jointaug.masks.compose import compose_condition

    tissue = np.ones((256, 256), np.uint8)
    regions = np.zeros((256, 256), np.uint8)
    yy, xx = np.mgrid[:256, :256]
    regions[(yy - 60) ** 2 + (xx - 60) ** 2 <= 64] = 1  # 197 px: a finger joint
    regions[(yy - 180) ** 2 + (xx - 160) ** 2 <= 441] = 2  # 1,385 px: a wrist
    finger, wrist = int((regions == 1).sum()), int((regions == 2).sum())
    for name in ("demo", "cpu"):
        c = load_config(name)
        n = c.classify.image_size
        assert c.perlin.min_pixels * n * n / (256 * 256) >= 25, name
        rng = np.random.default_rng(0)
        for _ in range(5):
            out = compose_condition(tissue, regions, np.array([2, 2]), rng, c.perlin)
            hot = out.condition == 3
            got = int((hot & (regions == 1)).sum())
            if c.perlin.min_fraction == 0:
                assert got == finger  # whole: the rule cannot be met
            else:
                assert np.ceil(c.perlin.min_fraction * finger) <= got <= 0.9 * finger
            kept = int((hot & (regions == 2)).sum())
            assert c.perlin.min_pixels <= kept <= 0.9 * wrist  # varied, never below the rule
            assert out.fell_back.tolist() == [c.perlin.min_fraction == 0, False]
    assert load_config("paper").perlin.min_pixels == 25  # the paper's own numbers stay
