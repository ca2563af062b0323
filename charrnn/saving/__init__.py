"""Models on disk: the checkpoint format (an ``.npz`` of named arrays plus JSON metadata,
read without pickle) and the model that ships with charrnn.

Imports ``charrnn.nn``, ``charrnn.data``, ``charrnn.io`` and ``charrnn.errors``.
"""
