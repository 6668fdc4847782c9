"""Training LeNet-5 the paper's way: `trainer` (the online SDLM/SGD loop, its settings and
recipes), `rundir` (run folders and their lock), `warmup` (compiling the kernels before the
first pass), `progress` (the progress bar).
"""
