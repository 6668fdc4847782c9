"""What a user does with a trained network: `audit` (the paper's parameter and connection counts,
recomputed from the graph), `rejection` (the top-2 gap and the paper's rejection threshold),
`predict` (classifying image files), `show` (one digit through every layer, as a figure),
`export_onnx` (the network as an ONNX graph), `demo` (a web page to draw digits on).
"""
