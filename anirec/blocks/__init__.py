"""Tower inputs as blocks.

A tower reads a list of input blocks, each filling its own columns of the tower's input rows for
every training example: dense features (with their leave-one-out statistic columns, so that no
column holds the example's own rating), an ID embedding, the pooled history of the user's anime.
A block is one module here (its arrays, their checks, and the NumPy twin of what the compiled
epoch does with it) and one compiled module in ``anirec._kernels`` (``_features.pyx``,
``_embedding.pyx``, ``_history.pyx``):

* ``gather``: the block's columns of the input rows of a run of examples (a training example
  leaves its own rating, and its own anime, out);
* ``backward`` (blocks with parameters): the gradient with respect to those columns, kept per
  input row in the block's own buffer and added into the parameters' gradient in row order, so
  any number of threads gives the same bits;
* ``step``: one optimizer step on the parameter rows the batch touched (lazy, like PyTorch's
  ``SparseAdam``), whose gradients are then zeroed.

Blocks without parameters come first in a tower, those with parameters after them, so the
first layer's input gradient is one product for all of them. A new input kind is a new module
here and in ``anirec._kernels``, its kind code in :data:`KINDS` and in ``_block.pxd``, and its
tests.
"""

from .embedding import Embedding
from .features import Features, ItemLeaveOneOutStats, LeaveOneOutStats
from .history import History

#: Kind code -> block class; the compiled epoch dispatches on the same codes (``_block.pxd``).
KINDS = {Features.kind: Features, Embedding.kind: Embedding, History.kind: History}

__all__ = ["Features", "LeaveOneOutStats", "ItemLeaveOneOutStats", "Embedding", "History",
           "KINDS"]
