"""MNIST data: IDX files and their facts (idx), the verified downloader, loading with the
paper's input mapping (mnist), and the paper's affine distortions (distort)."""
