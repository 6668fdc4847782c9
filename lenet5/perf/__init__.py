"""Measuring speed: `bench` (samples per second of every path, and the protocol's implied time),
`ceiling` (this CPU's matrix-multiply rate, the yardstick the figures are a share of) and
`layers` (where one online step's time goes, layer kernel by layer kernel).
"""
