"""Training LeNet-5 the paper's way. `trainer` is the pass loop; around it: `config` (a run's
settings and the recipes), `step_sizes` (SDLM's epsilon schedule and Hessian estimate),
`distorted_source` (the distorted training set), `evaluation` (the end-of-pass errors, in the
background), `run_checkpoint` (the run's checkpoint and metrics files), `interruption`
(stopping on Ctrl-C or SIGTERM), `divergence` (stopping a run that blew up), `rundir` (run
folders and their lock), `warmup` (compiling the kernels before the first pass) and
`progress` (the progress bar).
"""
