"""The version of ganforge: written into every run folder, checkpoint and exported generator."""
__version__ = "0.1.0"
