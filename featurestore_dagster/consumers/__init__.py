"""Consumers of the store: point-in-time training sets (``training_sets``) and latest values
(``online``), over the lake's feature tables."""
