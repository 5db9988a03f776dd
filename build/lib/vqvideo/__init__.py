"""vqvideo: video prediction with a hierarchical video VQ-VAE and PixelCNN priors.

Reproduces *Predicting Video with VQVAE*: stage 1 compresses 16x256x256 clips into top (4x32x32) and
bottom (8x64x64) codes; stage 2 trains a top prior and a bottom prior on cached codes; prediction samples
12 frames from 4 given ones. Submodules are imported lazily so `import vqvideo` stays cheap.
"""

__version__ = "0.1.0"
