"""The paper's numbers, stated once: the input levels of its preprocessing (section III-A), the
statistics of the resulting training inputs, and the figures it publishes for the network
(section II-B) and for its results (section III-C, Fig. 9).

The audit, the experiments' reports and the README set our measurements beside these.
Nothing here imports from the data loaders: the compiled engine reads the input levels
without pulling in the downloader.
"""

# The input mapping (section III-A): white background -> -0.1, black ink -> 1.175.
BACKGROUND = -0.1  # value of a white (0) pixel, and of the padding
INK = 1.175  # value of a fully black (255) pixel
# Mean and standard deviation of every value of the preprocessed (padded) training set, in
# float64 (tests/test_inputs.py recomputes them from MNIST). The paper wanted "mean roughly 0, variance
# roughly 1"; the -0.1/1.175 mapping gives variance 0.123. Variant(inputs="unit") reads the
# stated intent: the network's input is (x - TRAIN_MEAN) / TRAIN_STD.
TRAIN_MEAN = 0.027547076320358063
TRAIN_STD = 0.35090210445958353

# The paper's figures (section II-B): trainable parameters, connections.
PAPER_FIGURES = {
    "C1": (156, 122_304),
    "S2": (12, 5_880),
    "C3": (1_516, 151_600),
    "S4": (32, 2_000),
    "C5": (48_120, 48_120),
    "F6": (10_164, 10_164),
    "OUT": (0, 840),
}
PAPER_TOTAL = (60_000, 340_908)
# The paper's totals for its predecessors (section III-C.7): free parameters, connections
# (LeNet-1: "about 100,000 multiply-add steps and 2,600 free parameters"; LeNet-4: "about
# 260,000 connections and 17,000 free parameters")
PAPER_ARCH_TOTALS = {"lenet1": (2_600, 100_000), "lenet4": (17_000, 260_000)}
# The reduced-set SVM's cost per recognition (section III-C.9, Fig. 11): "650,000
# multiply-adds"; with 784 inputs per kernel evaluation, about 830 reduced-set vectors.
PAPER_RS_SVM_MULTIPLY_ADDS = 650_000

# The paper's results that this project reproduces (section III-C).
PAPER_RESULTS = {
    "test_error_pct": 0.95,  # 20 passes, no distortions (section III-C, Fig. 5)
    "train_error_pct_pass19": 0.35,
    "test_error_distorted_pct": 0.8,  # 60k + 540k distorted copies
    "test_errors_distorted": 82,  # misclassified test patterns with distortions (Fig. 8)
    "train_samples_distorted": 540_000,  # distorted copies added to the 60k originals
    # Fig. 9's neighbours on the same data (test error, %)
    "baseline_linear_pct": 12.0,
    "baseline_mlp_300_pct": 4.7,
    "baseline_mlp_1000_pct": 4.5,
    "baseline_mlp_300_100_pct": 3.05,
    "rejection_target_error_pct": 0.5,  # Fig. 10: reject until the rest has this error
    # Fig. 9's other rows (test error, %; regular test set unless the key says otherwise);
    # LeNet-5 itself and the linear/MLP rows are the keys above
    "fig9_test_error_pct": {
        "linear-deslant": 8.4,
        "pairwise-linear": 7.6,
        "knn-euclidean": 5.0,
        "knn-euclidean-deslant": 2.4,
        "mlp-20x20-300-deslant": 1.6,
        "mlp-300-distortions": 3.6,
        "mlp-1000-distortions": 3.8,
        "mlp-300-100-distortions": 2.5,
        "mlp-500-150": 2.95,
        "mlp-500-150-distortions": 2.45,
        "pca40-quadratic": 3.3,
        "rbf1000-linear": 3.6,
        "tangent-distance-16x16": 1.1,
        "svm-poly4": 1.1,
        "rs-svm-poly5": 1.0,
        "v-svm-poly9-distortions": 0.8,
        "lenet1": 1.7,
        "lenet4": 1.1,
        "lenet4-knn": 1.1,
        "lenet4-local": 1.1,
        "boosted-lenet4-distortions": 0.7,
    },
}
