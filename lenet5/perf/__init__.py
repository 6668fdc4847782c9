"""Measuring speed: `bench` (samples per second of every path, and the protocol's implied time)
and `ceiling` (this CPU's matrix-multiply rate, the yardstick the figures are a share of).
"""
