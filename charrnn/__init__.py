"""charrnn: a character-level LSTM language model in pure NumPy.

The public API (``charrnn.api``): ``load`` a model, then ``sample``, ``stream`` and
``score`` with it; ``train`` one; ``export`` it for PyTorch. Everything named in
``__all__`` is promised; the subpackages are charrnn's own.
"""

from charrnn._version import __version__
from charrnn.api import EXPORT_FORMATS, SampleResult, TextModel, load, train
from charrnn.data.sources import InvalidBytes
from charrnn.errors import CharrnnError, CharrnnWarning, SettingsConflict
from charrnn.generation.sampling import Sampling
from charrnn.generation.training_samples import SamplesDrawn
from charrnn.nn.scoring import LineScore, TextScore
from charrnn.training.run import Note
from charrnn.training.settings import SettingNeeded, TrainSettings
from charrnn.training.trainer import ArchitectureChanged, TrainEvent, TrainingDiverged

__all__ = [
    "__version__", "load", "train", "TextModel", "SampleResult", "Sampling", "TrainSettings",
    "TextScore", "LineScore", "TrainEvent", "Note", "SamplesDrawn", "EXPORT_FORMATS",
    "CharrnnError", "SettingsConflict", "SettingNeeded", "ArchitectureChanged",
    "TrainingDiverged", "InvalidBytes", "CharrnnWarning",
]
