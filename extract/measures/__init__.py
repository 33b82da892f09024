"""The measures the extraction runs on each seed, in the order it runs them.

Adding a measure is one module here (a `Measure` declaring its tables) and its line below, plus
the dbt models that read its tables.
"""

from extract.measures.base import Measure
from extract.measures.blimp_scores import BlimpScores
from extract.measures.fingerprints import Fingerprints
from extract.measures.icl_scores import IclScores
from extract.measures.layer_lens import LayerLens
from extract.measures.text_loglik import LoglikVectors
from extract.measures.trajectory import Trajectory
from extract.measures.weight_stats import WeightStatistics

# Trajectory comes last: on a partition run on its own it loads earlier checkpoints into the model
# skeleton, which the measures before it read as this checkpoint's.
MEASURES: tuple[type[Measure], ...] = (
    WeightStatistics,
    IclScores,
    Fingerprints,
    LoglikVectors,
    BlimpScores,
    LayerLens,
    Trajectory,
)
