"""Augmentation sets: the registry of set kinds (``registry``), the condition sources and
per-case plan (``sources``), and one module per kind that makes a set (``diffusion``:
MP, MP-Perlin, 11k, 11k-Perlin; ``forward``; ``oracle``)."""
