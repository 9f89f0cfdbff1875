"""imagemachines: look inside image-recognition networks, made for digital art history."""

__version__ = "0.1.0"
