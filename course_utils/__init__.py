"""Small helpers shared by the course notebooks.

Each module is a plain file about one idea, meant to be read top to bottom. Its first lines
say which lessons use it. From the ground up:

- ``env``          - device, seeds, quick/full mode, Colab detection, the data folder, ``setup()``
- ``plots``        - image grids and loss curves
- ``filters``      - convolution and pooling written by hand, classic kernels (lessons 2-3)
- ``filter_plots`` - pictures of kernels, arrays and feature maps (lessons 2-3, 5)
- ``images``       - loading any picture file safely, ``BadImageError`` (lesson 7)
- ``transforms``   - ImageNet statistics, training and validation preprocessing (lessons 5-7)
- ``models``       - torchvision ResNets (pretrained when possible), parameter counts, layer summary
- ``digits``       - scikit-learn's handwritten digits as tensors, centred or on a larger canvas (lesson 5)
- ``optim``        - layer groups, freezing, discriminative rates, AdamW, one-cycle (lessons 4-7)
- ``history``      - what a training run records, as a table and curves (lessons 4-7)
- ``training``     - metrics, one step, one epoch, evaluation, ``fit``, ``fine_tune`` (lessons 4-7)
- ``lr_finder``    - the learning-rate finder and its suggestions (lessons 4-5)
- ``checkpoint``   - saving a model with what is needed to use it, loading it safely (lessons 6-7)
- ``pets``         - the Oxford-IIIT Pet data sets and loaders (lessons 5-7)
- ``interpret``    - confusion matrix, most-confused pairs, top losses (lesson 6)
- ``inference``    - predicting new photos, one, a batch or a folder (lesson 7)
- ``export``       - TorchScript, ONNX and latency (lesson 7)
- ``widgets``      - the interactive kernel explorer and the photo-upload classifier (lessons 2, 7)
- ``exercises``    - the checks, hints and solutions of every lesson's exercises (a folder, a file per lesson)
- ``ddp_train``    - lesson 6's model trained by several GPUs or CPU processes at once (``torchrun``, DDP)

Plumbing you need not read, each in a room of its own that says so: ``download`` (safe
writes, verified downloads, archive extraction), ``pets_prep`` (getting the pet photos onto
the disk), ``quick_pets`` (quick mode's cartoon pets) and ``recipes`` (a lesson in one call).

``LAYERS`` below is the order of the house: a module may import only modules listed before
it (``tests/test_layers.py`` checks), so data and images know nothing of training, training
knows nothing of pets, and only ``recipes`` chains lessons. Importing this package never
touches the network.
"""

from course_utils.env import Env, setup

LAYERS = (
    "env",
    "download",
    "plots",
    "filters",
    "filter_plots",
    "images",
    "transforms",
    "models",
    "digits",
    "optim",
    "history",
    "training",
    "lr_finder",
    "checkpoint",
    "pets_prep",
    "quick_pets",
    "pets",
    "interpret",
    "inference",
    "export",
    "widgets",
    "exercises",
    "recipes",
    "ddp_train",
)
"""Every module of the package, lowest first: each may import only those before it."""

__all__ = ["Env", "setup", "LAYERS"]
