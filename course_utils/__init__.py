"""Small helpers shared by the course notebooks.

Each module is a plain file named after one idea, meant to be read top to bottom:

- ``env``         - device, seeds, quick/full mode, Colab detection, ``setup()``
- ``data``        - where data lives, shipped samples, and a safe, verified download
- ``plots``       - image grids and loss curves
- ``models``      - torchvision ResNets (pretrained when possible), parameter counts, layer summary
- ``filters``     - convolution and pooling written by hand, classic kernels, feature-map plots (lessons 2-3)
- ``widgets``     - the interactive kernel explorer and the photo-upload classifier
- ``training``    - optimiser, one-cycle schedule, ``fit``, freezing and ``fine_tune`` (lessons 4-7)
- ``lr_finder``   - the learning-rate finder and its suggestions (lesson 4)
- ``pets``        - the Oxford-IIIT Pet data (real or quick cartoons), transforms, loaders (lessons 5-7)
- ``interpret``   - confusion matrix, most-confused pairs, top losses (lesson 6)
- ``checkpoint``  - saving a model with what is needed to use it, loading it safely (lessons 6-7)
- ``inference``   - robust image loading, prediction, export and latency (lesson 7)

Importing this package never touches the network.
"""

from course_utils.env import Env, setup

__all__ = ["Env", "setup"]
