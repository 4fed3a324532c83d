"""The functional core: pure decisions over plain data.

Nothing in this package opens a socket, touches a database or a file, or reads
the clock: time is always a parameter. The live services (appliance, control
plane, player) and the simulator call these same functions.
"""
