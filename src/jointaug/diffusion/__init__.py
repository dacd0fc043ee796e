"""The generator: the conditional denoiser (``model``), its noise schedule and samplers
(``sample``), classifier-free guidance and min-SNR (``guidance``), the training step
(``loop``) and loop (``train``), its training data (``trainset``), intensity mapping
(``intensity``), checkpoints, loading a trained model (``trained``) and sample grids."""
