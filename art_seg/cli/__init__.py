"""The ``art-seg`` command line: ``demo``, ``train``, ``attack``, ``evaluate``, ``benchmark``
(see ``art-seg --help``)."""
