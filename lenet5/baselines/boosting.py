"""Boosting three networks as in the paper's "[dist] boosted LeNet-4" (section III-C-5, after
Drucker, Schapire and Simard): net 1 is trained the usual way; net 2 on a stream of new
patterns filtered by net 1 so that half of them are patterns net 1 gets right and half ones it
gets wrong; net 3 on new patterns on which nets 1 and 2 disagree. At test time the three
nets' outputs are added. The paper: "Because the error rate of LeNet-4 is very low, it was
necessary to use the artificially distorted images (as with LeNet-5) in order to get enough
samples to train the second and third nets."

This module is the library: the stream of new distorted patterns, the filtering of a stream
into a training set, and the committee's prediction. The three nets are LeNet-4s trained by the
project's own Trainer (lenet5.experiments.fig9 wires it up). Our choices where the paper says
nothing (the constants below and fig9.boosted_run):

- Patterns. Every pattern is a training digit under a random affine distortion of the paper's
  kind (lenet5.data.distort, the same ranges as the distortions experiment). Net 1 trains on
  the paper's distorted training set (the 60,000 originals plus 540,000 distorted copies, as
  `lenet5 train --distortions 540000`). The filtering streams for nets 2 and 3 draw *new*
  distortions: pattern k of a stream is original i_k (uniform over the training set) under
  distortion d_k, both drawn from (seed, STREAM_TAG, stream, block) alone, so a pattern is
  reproducible from its stream position and no pattern of net 2's stream is one of net 3's or
  one net 1 trained on (the digits underneath are the same 60,000: there are no others
  without touching the test set). The test set is never filtered or trained on.
- Net 2's set: SET_SIZE patterns, exactly half net 1 right and half net 1 wrong: the first
  SET_SIZE / 2 of each kind in stream order (the paper's coin flip gives the mix only on
  average; taking quotas gives it exactly).
- Net 3's set: the first SET_SIZE patterns of a second stream on which nets 1 and 2 predict
  different classes ("disagree": their argmax differ, whoever is right).
- Scarcity: a filter examines at most STREAM_LIMIT patterns. If net 1's errors run out first,
  net 2 gets as many right patterns as wrong ones found (still exactly 50/50, a smaller set);
  if disagreements run out, net 3 trains on those found. Either is reported (the set sizes and
  the patterns examined are in the results).
- Training: each net with the same protocol and the same number of passes (fig9 states it);
  a pass of net 2 or 3 is one sweep of its filtered set in a fresh random order.
- Committee: the sum of the three nets' softmax probabilities, p = exp(-y) of each net's
  output y = -log p (COMBINE). Probabilities are the bounded analogue of the paper's squashed
  output units: each net adds at most 1 to a class, so one confidently wrong net cannot
  outvote two that agree. The sum of the pre-softmax scores (equivalently of log p: within a
  net they differ by one constant per pattern) is reported beside it (committee_scores(...,
  "log")).
"""
import hashlib

import numpy as np

from ..data.distort import draw_params, render_affine

SET_SIZE = 60_000  # patterns in net 2's and in net 3's training set (net 1: the paper's 60,000 a pass)
STREAM_LIMIT = 6_000_000  # patterns a filter examines at most
BLOCK = 10_000  # patterns drawn, rendered and classified together
LOG_EVERY = 1_000_000  # a filter's progress line every so many patterns read
STREAM_TAG = 1993  # the generator stream of the filtering patterns: (seed, 1993, stream, block)
NET2_STREAM, NET3_STREAM = 2, 3
RIGHT, WRONG, DISAGREE, SKIP = 0, 1, 2, -1  # categories of a filtered pattern
COMBINES = ("probability", "log")
COMBINE = "probability"


class PatternStream:
    """An endless stream of new distorted patterns of the training digits `images` (N, 32, 32):
    pattern k is images[i_k] under distortion d_k, drawn per block of BLOCK from
    (seed, STREAM_TAG, stream, k // BLOCK) alone."""

    def __init__(self, images, labels, seed, stream, block=BLOCK):
        self.images = np.ascontiguousarray(images)
        self.labels = np.asarray(labels, dtype=np.int64)
        self.seed, self.stream, self.block_size = int(seed), int(stream), int(block)

    def block_draws(self, b):
        """(original indices, distortion parameters (n, 5)) of block b."""
        rng = np.random.default_rng([self.seed, STREAM_TAG, self.stream, int(b)])
        return rng.integers(0, len(self.images), self.block_size), draw_params(rng, self.block_size)

    def render(self, originals, params):
        """(images, labels) of the patterns made of these originals and distortions."""
        out = np.empty((len(originals),) + self.images.shape[1:], self.images.dtype)
        render_affine(self.images, np.asarray(originals, dtype=np.int64), params, True, out)
        return out, self.labels[originals]

    def block(self, b):
        """(images, labels) of block b, rendered now."""
        return self.render(*self.block_draws(b))

    def blocks(self):
        """Every block in order, (images, labels), without end."""
        b = 0
        while True:
            yield self.block(b)
            b += 1

    def patterns(self, positions):
        """(images, labels) of the patterns at these stream positions, in the order given."""
        positions = np.asarray(positions, dtype=np.int64)
        originals = np.empty(len(positions), dtype=np.int64)
        params = np.empty((len(positions), 5))
        for b in np.unique(positions // self.block_size):
            here = np.flatnonzero(positions // self.block_size == b)
            block_originals, block_params = self.block_draws(b)
            offsets = positions[here] % self.block_size
            originals[here], params[here] = block_originals[offsets], block_params[offsets]
        return self.render(originals, params)


def take_first(categories, quotas, limit):
    """Filter a stream: `categories` yields, batch by batch, each pattern's category (an int
    array; SKIP and categories without a quota are passed over). The stream is read until every
    quota is filled (up to the pattern that filled the last one) or `limit` patterns have been
    read, whichever comes first. Returns ({category: the stream positions of its first
    quotas[category] patterns}, patterns read, {category: how many of the patterns read had it})."""
    taken = {c: [] for c in quotas}
    need = dict(quotas)
    examined, counts = 0, {}
    for batch in categories:
        batch = np.asarray(batch)[:max(0, limit - examined)]
        stop = len(batch)
        for c in quotas:
            if need[c]:
                hits = np.flatnonzero(batch == c)[:need[c]]
                taken[c].append(examined + hits)
                need[c] -= len(hits)
        if not any(need.values()):  # read this batch only as far as the last pattern taken
            stop = 1 + max((int(p[-1][-1]) - examined for p in taken.values() if p and len(p[-1])), default=-1)
        for c, n in zip(*np.unique(batch[:stop], return_counts=True)):
            counts[int(c)] = counts.get(int(c), 0) + int(n)
        examined += stop
        if not any(need.values()) or examined >= limit:
            break
    return ({c: np.concatenate(p).astype(np.int64) if p else np.empty(0, np.int64) for c, p in taken.items()},
            examined, counts)


def predictions(net, images, batch=2000):
    """Each pattern's class by `net` (argmin of its outputs y = -log p)."""
    return net.predict(images, batch=batch)


def reporting(batches, wanted, log, every=LOG_EVERY):
    """The category batches of a filter, passed through; every `every` patterns read, log how
    many of category `wanted` were seen so far."""
    read = seen = 0
    for batch in batches:
        yield batch
        read, seen = read + len(batch), seen + int(np.sum(batch == wanted))
        if log and read % every < len(batch):
            log(f"filter: {read:,} patterns read, {seen:,} wanted ones seen")


def mixed_set(net1, stream, size, limit=STREAM_LIMIT, log=None):
    """Net 2's training set: stream positions, size // 2 that net 1 classifies right and as many
    it classifies wrong (fewer of both if net 1's errors run out within `limit`). Returns
    (positions sorted, summary dict). log: progress lines, if given."""
    def categories():
        for images, labels in stream.blocks():
            yield np.where(predictions(net1, images) == labels, RIGHT, WRONG)

    taken, examined, counts = take_first(reporting(categories(), WRONG, log), {RIGHT: size // 2, WRONG: size // 2},
                                         limit)
    wrong = taken[WRONG]
    right = taken[RIGHT][:len(wrong)]  # keep the mix 50/50 when errors were scarce
    positions = np.sort(np.concatenate([right, wrong]))
    summary = {"size": int(len(positions)), "right": int(len(right)), "wrong": int(len(wrong)),
               "examined": int(examined), "net1_stream_error_pct": percent(counts.get(WRONG, 0), examined),
               "scarce": bool(len(wrong) < size // 2)}
    return positions, summary


def disagreement_set(net1, net2, stream, size, limit=STREAM_LIMIT, log=None):
    """Net 3's training set: stream positions of the first `size` patterns on which net 1 and
    net 2 predict different classes (fewer if they run out within `limit`)."""
    def categories():
        for images, _ in stream.blocks():
            yield np.where(predictions(net1, images) != predictions(net2, images), DISAGREE, SKIP)

    taken, examined, counts = take_first(reporting(categories(), DISAGREE, log), {DISAGREE: size}, limit)
    positions = taken[DISAGREE]
    summary = {"size": int(len(positions)), "examined": int(examined),
               "disagreement_pct": percent(counts.get(DISAGREE, 0), examined),
               "scarce": bool(len(positions) < size)}
    return positions, summary


def percent(found, examined):
    """Patterns of a kind per 100 patterns read by a filter."""
    return round(100.0 * found / examined, 3) if examined else 0.0


def committee_scores(nets, images, combine=COMBINE, batch=2000):
    """(N, 10) the committee's output: the sum over `nets` of their softmax probabilities
    exp(-y) ("probability") or of their log-probabilities -y ("log", the same argmax as the
    sum of pre-softmax scores), where y = net.forward(images) = -log p."""
    if combine not in COMBINES:
        raise ValueError(f"combine must be one of {COMBINES}, got {combine!r}")
    out = np.zeros((len(images), 10))
    for start in range(0, len(images), batch):
        for net in nets:
            y = net.forward(images[start:start + batch]).astype(np.float64)
            out[start:start + batch] += np.exp(-y) if combine == "probability" else -y
    return out


def committee_predict(nets, images, combine=COMBINE):
    """The committee's class of each image: argmax of committee_scores."""
    return committee_scores(nets, images, combine).argmax(axis=1)


def fingerprint(*arrays):
    """A short hash of arrays' bytes (e.g. the filtering nets' weights and the filter's
    settings), to tell whether a saved training set was made by these nets."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(str((a.dtype, a.shape)).encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]
