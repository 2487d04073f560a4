"""art_seg: adversarial robustness for segmentation networks, built on IBM's Adversarial Robustness Toolbox.

Conventions used throughout the package:

- channels first: images are ``(N, C, *spatial)``, logits and probabilities ``(N, K, *spatial)``;
- class indices ``0 .. K-1`` inside the package (BraTS label values only at the data layer's edges);
- intensities, and so every ``eps``, are in z-scored intensity units unless a docstring says otherwise.
"""

__version__ = "0.1.0"
