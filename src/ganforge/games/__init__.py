"""What one training step does: the GAN game (gan), pix2pix's paired game (pair), CycleGAN's (cycle), and the
plain 2-D game the lab's experiments and the live playground play (plain).

A game is built from its nets, their optimizers and a typed options object (GANOptions, PairOptions,
CycleOptions); ``step()`` runs the D phase(s) with G frozen, then the G phase with D frozen, and returns the
statistics of each update.
"""
