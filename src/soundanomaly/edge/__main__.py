"""``python -m soundanomaly.edge MODEL.onnx file.wav|-``: see :func:`soundanomaly.edge.main`."""

import sys

from soundanomaly.edge import main

sys.exit(main())
