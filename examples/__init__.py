"""Example scripts and accounts file, installed as ``kosmo_runtime.examples`` (``kosmo examples`` copies them out)."""
