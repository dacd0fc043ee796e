"""Augmentation sets: the registry of set kinds (``registry``), the condition sources and
per-case plan (``sources``), the one set writer (``writer``: settings, resume, growth,
batches, shards) and one module per kind that supplies a batch maker (``diffusion``:
MP, MP-Perlin, 11k, 11k-Perlin; ``forward``; the controls ``oracle`` and ``oracle-plan``
(the phantom's imaging model, ``phantom_render``), ``shuffled``, ``oversample_prev``)."""
