"""Files on disk, knowing nothing of models: reading ``.npy`` arrays and ``.npz`` archives
that may be damaged or hostile, and writing files atomically.

The lowest layer: it imports only ``charrnn.errors``.
"""
