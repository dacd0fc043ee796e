"""Condition maps for the diffusion model (paper: "Image Augmentation", "Perlin noise").

- :mod:`.sampler` — hierarchical inflammation vectors (``sample_inflammation``).
- :mod:`.noise` — Perlin noise: batched 2D maps (reference oracles: ``tests/reference_noise.py``).
- :mod:`.perlin` — the Perlin variation of joint masks (``vary_mask``).
- :mod:`.compose` — tissue + regions + vector -> condition map (``compose_condition``,
  ``condition_channels``).
- :mod:`.grid` — the ``jointaug conditions`` picture (``conditions_grid``).
"""
