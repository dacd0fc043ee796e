"""Condition maps for the diffusion model (paper: "Image Augmentation", "Perlin noise").

- :mod:`.sampler` — hierarchical inflammation vectors (``sample_inflammation``).
- :mod:`.noise` — Perlin noise: reference Improved Noise, batched 2D maps.
- :mod:`.perlin` — the Perlin variation of joint masks (``vary_mask``).
- :mod:`.compose` — tissue + regions + vector -> condition map (``compose_condition``,
  ``condition_channels``).
- :mod:`.grid` — the ``jointaug conditions`` picture (``conditions_grid``).
"""
