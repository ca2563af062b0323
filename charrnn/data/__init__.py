"""Text as the model sees it: the vocabulary, reading and decoding source files, laying a
text out as one token sequence, batching it into windows, and the cache of encoded texts.

Imports ``charrnn.io`` and ``charrnn.errors``; knows nothing of models.
"""
