"""``ganforge serve``: a local web app with the 2-D playground and live views of run folders.

params (what the page may send), playground (the game and its frames),
runview (a run folder followed as it grows), app (the Flask routes), server
(start and stop).
"""
from .server import Server

__all__ = ["Server"]
