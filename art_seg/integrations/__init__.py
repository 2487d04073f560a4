"""Adapters to other tools' trained models, each returning a :class:`~art_seg.estimators.PyTorchSegmenter` whose
predictions are the tool's own. The tools are imported lazily, inside the loaders, so that the core install stays
light: ``art_seg.integrations.nnunet.load_nnunet`` needs ``nnunetv2`` (``pip install art-seg[nnunet]``),
``art_seg.integrations.monai.load_bundle`` needs MONAI (``pip install art-seg[monai]``).
"""
