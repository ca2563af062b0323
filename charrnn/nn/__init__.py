"""The network and its numerics: the recurrent layers (forward and backward over a window),
the cells that put them behind one interface, the model, the optimizer, and scoring.

Imports ``charrnn.data`` (the vocabulary, a text's layout) and below.
"""
