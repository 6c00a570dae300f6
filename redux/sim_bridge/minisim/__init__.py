"""minisim: the embedded closed-loop driving simulator (Alpasim's stand-in on a CPU)."""
