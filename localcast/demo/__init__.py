"""`localcast demo`: the whole system end to end on one machine (see :mod:`.scenario`)."""
