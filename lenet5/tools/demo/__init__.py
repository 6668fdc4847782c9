"""`lenet5 demo`: a local web page to draw a digit on and watch every layer of LeNet-5 respond.

`classify` turns a drawing into the network's answer and every layer's maps, `samples` gives
MNIST test digits to try (the test set when present, else a few shipped with the package),
`server` serves the page and the JSON API with the standard library's threading HTTP server.
"""
