"""How good is a run: FID and KID, known-mapping fidelity (PSNR, SSIM) and the downstream-classifier gain.

Torch, numpy and scipy only; no Django imports, so a reviewer can reproduce the numbers offline.
"""
