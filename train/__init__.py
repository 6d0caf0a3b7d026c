"""Training workbench (installed as wdp.train)."""
