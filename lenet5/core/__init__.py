"""The network itself: LeNet-5's graph and every number the paper prints, the compiled passes,
and the model object that holds the weights.

`architecture` (layer sizes, Table I, the variants), `paper` (the paper's input levels and
published figures), `prototypes` (the RBF output's 7x12 bitmaps), `kernels` (one
`*_forward`/`*_backward` pair per layer kind, one sample at a time), `lane_kernels` (the same
layers on blocks of samples, one per SIMD lane), `engine` (the passes composed from those
kernels), `gemm` (the batch path as matrix products), `jit_cache` (keeping Numba's on-disk
cache honest), `model` (`LeNet5`), `checkpoint_format` (what a checkpoint file may hold, read
without unpickling), `inputs` (the images and labels the network accepts), `numpy_reference`
(the whole network in plain numpy, the readable statement of the math that the tests check
the kernels against).
"""
