"""Small helpers shared by the course notebooks.

Each module is a plain file named after one idea, meant to be read top to bottom:

- ``env``     - device, seeds, quick/full mode, Colab detection, ``setup()``
- ``data``    - where data lives and a safe, verified download
- ``plots``   - image grids and loss curves
- ``models``  - torchvision models, with pretrained weights when they can be had

Importing this package never touches the network.
"""

from course_utils.env import Env, setup

__all__ = ["Env", "setup"]
