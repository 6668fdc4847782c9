"""Divergence, checked after every chunk of samples. Trained LeNet-5 weights stay below 2 in
magnitude (the shipped reference: 1.29), so past WEIGHT_LIMIT the squashing units are
saturated for good. An untrained network's F6 output is ~0, so its loss is ~84 for every
sample (each RBF output ~ |prototype|^2 = 84); diverged runs sit at 180-420 (measured on 2,000
images: --mu 0.02 and 0.001, SGD at --lr 0.1, 1, 100 and 1e9), healthy ones fall below 50
within 500 samples. LOSS_BLOWUP times the untrained loss separates the two.
"""
import numpy as np

WEIGHT_LIMIT = 1e3
LOSS_BLOWUP = 1.5


def divergence(losses, theta, recent_loss, initial_loss):
    """(cause, k): why the step that produced `losses` (one chunk's, in order) broke the
    network, and the index in the chunk of the first bad sample (else its last); (None, None)
    if it did not. recent_loss: the mean loss of the last chunk's worth of samples;
    initial_loss: the untrained network's (None: not known)."""
    if not (np.isfinite(losses).all() and np.isfinite(theta).all()):
        bad = ~np.isfinite(losses)
        return "loss became NaN/inf", int(np.argmax(bad)) if bad.any() else len(losses) - 1
    peak = float(np.abs(theta).max())
    if peak > WEIGHT_LIMIT:
        return f"weights grew to {peak:.3g} (a trained LeNet-5's stay below 2)", len(losses) - 1
    if initial_loss is not None and recent_loss > LOSS_BLOWUP * initial_loss:
        return (f"the loss rose to {recent_loss:.4g}, over {LOSS_BLOWUP:g}x the untrained "
                f"network's {initial_loss:.4g}"), len(losses) - 1
    return None, None
