"""Pictures and files for people: overlays, contact sheets, and what ``risam segment`` writes.

- :mod:`risam.drawing.viz`: masks drawn over images, fonts, panels and contact sheets.
- :mod:`risam.drawing.overlays`: the quickstart's sheets of predictions against the ground truth.
- :mod:`risam.drawing.segment_output`: masks, overlays and ``predictions.json`` of ``risam segment``.
"""
