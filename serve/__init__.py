"""Server (installed as wdp.serve)."""
