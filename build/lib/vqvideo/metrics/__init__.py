"""Evaluation metrics (pure functions, nn.Modules and torchmetrics Metrics; no Lightning, no tools).

- i3d.py: the Kinetics-400 I3D that FVD uses (`load_i3d`, `random_i3d` stand-in weights).
- fvd.py: preprocessing protocols, I3D features, the Fréchet distance, a DDP-ready FVD Metric, folds, and the
  protocol card every FVD number is reported with.
- frame_quality.py: per-frame PSNR/SSIM against ground truth (torchmetrics) and the copy-last-frame baseline.
- codec.py: the x264 compression baseline at the VQ-VAE's bit budget.
- levels.py: per-level diagnostics: code usage and perplexity, the mean-colour baseline PSNR.
"""
