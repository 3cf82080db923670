"""socketedge: RGB image classifiers → depth / NIR / thermal cameras without the RGB training data (SOCKET)."""

__version__ = "0.1.0"
