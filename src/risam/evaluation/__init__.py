"""How predictions are scored: the field's metrics, the training loss and RefShapes' proof-of-reading.

- :mod:`risam.evaluation.metrics`: overall IoU, mean IoU, precision at IoU thresholds, gIoU and the
  no-target scores, summed over ranks.
- :mod:`risam.evaluation.losses`: the paper's loss (binary cross-entropy and Dice).
- :mod:`risam.evaluation.grounding`: RefShapes-only metrics that show whether a model reads the sentence.
"""
